"""Golden models: exact integer NumPy code written from the gemmlowp, TFLite
Micro and backprop definitions, plus float PyTorch references."""
