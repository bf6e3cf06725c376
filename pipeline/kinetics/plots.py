"""Time-activity curve figures (matplotlib, Agg canvas, no pyplot state)."""

from __future__ import annotations

import numpy as np

from .fitting import TacFit

__all__ = ["tac_figure"]


def tac_figure(fit: TacFit, title: str, path) -> None:
    """Write a PNG of one curve: data with error-model bars, every fitted candidate, the chosen
    fit with its +-1 SD band (delta method), on linear and logarithmic activity axes.

    Parameters
    ----------
    fit : TacFit
    title : str
    path : str or os.PathLike
        Output PNG (written as given; the caller makes it atomic).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t, y = fit.time_h, fit.activity
    sig = fit.error_model.sigma(y) if y.size else y
    t_end = max(float(t.max()) * 1.3, 1.0)
    tt = np.linspace(0.0, t_end, 400)
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for ax, log in zip(axes, (False, True)):
        ax.errorbar(t, y, yerr=sig, fmt="ko", capsize=3, label="data (error model)", zorder=5)
        for c in fit.candidates:
            if c.status != "ok" or c is fit.chosen:
                continue
            w = "" if c.akaike_weight is None else f", w={c.akaike_weight:.2f}"
            if c.chi2_p_value is not None and c.chi2_p_value < 1e-3:
                w += ", rejected (chi2)"
            ax.plot(tt, c.evaluate(tt), lw=0.8, ls="--", label=f"{c.model}{w}")
        if fit.chosen is not None:
            f = fit.chosen.evaluate(tt)
            sd = fit.chosen.evaluate_sd(tt)
            ax.fill_between(tt, f - sd, f + sd, color="C3", alpha=0.25, lw=0, label="chosen +-1 SD")
            ax.plot(tt, f, color="C3", lw=2, label=f"chosen: {fit.chosen.model}")
        if fit.model_free is not None and len(t):
            mf = fit.model_free
            tx = np.concatenate([[0.0], t])
            yx = np.concatenate([[0.0 if mf.head == "linear" else y[0]], y])
            ax.plot(tx, yx, color="0.5", lw=0.8, label="model-free (trapezoid)")
        ax.set_xlabel("time after injection (h)")
        ax.set_ylabel("activity (MBq)")
        if log:
            pos = y[y > 0]
            if pos.size:
                ax.set_yscale("log")
                ax.set_ylim(pos.min() / 5, pos.max() * 3)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    sd_txt = f" +- {fit.tia_sd_mbq_h:.4g}" if np.isfinite(fit.tia_sd_mbq_h) else ""
    fig.suptitle(f"{title}: TIA = {fit.tia_mbq_h:.4g}{sd_txt} MBq*h ({fit.method})", fontsize=10)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.88, wspace=0.22)
    fig.savefig(str(path), format="png")
