"""`python -m hawkeye_onnx` = the `hawkeye-onnx` command."""

from hawkeye_onnx.cli import main

main()
