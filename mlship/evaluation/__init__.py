"""Building and judging bundles: export (skl2onnx, parity, golden examples), the model card,
evaluation reports and the promotion gate. Needs scikit-learn, pandas, matplotlib.
"""
