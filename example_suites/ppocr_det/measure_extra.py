# Model-specific metrics for tools/measure_suite.py: DB text-mask agreement (rapidocr DBPostProcess thresh 0.3).
def report(here, arrays, n, outs):
    import numpy as np

    def iou(a, b):
        a, b = a > 0.3, b > 0.3
        union = np.logical_or(a, b).sum()
        return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)

    name = next(iter(outs["cpu"]))
    h, c, f = (outs[k][name] for k in ("htp", "cpu", "float"))
    for i in range(n):
        print(
            f"  example {i}: text px (p>0.3) float {int((f[i] > 0.3).sum())} CPU-QDQ {int((c[i] > 0.3).sum())} "
            f"HTP {int((h[i] > 0.3).sum())}; mask IoU HTP/CPU-QDQ {iou(h[i], c[i]):.3f} "
            f"CPU-QDQ/float {iou(c[i], f[i]):.3f} HTP/float {iou(h[i], f[i]):.3f}"
        )
    print(f"  all: mask IoU HTP/CPU-QDQ {iou(h, c):.3f}  CPU-QDQ/float {iou(c, f):.3f}  HTP/float {iou(h, f):.3f}")
