"""``python -m sim infer``: int8 TFLite models on the RTL, checked against TFLite Micro."""
