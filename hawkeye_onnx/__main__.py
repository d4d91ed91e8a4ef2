"""`python -m hawkeye_onnx` = the `hawkeye-onnx` command."""

from hawkeye_onnx.cli import app

app(prog_name="hawkeye-onnx")
