"""The report of a :class:`~disciplined_widgets.recipe.Recipe`: chosen values, why, evidence, cost.

``Report(recipe)`` shows itself as HTML in a notebook; ``to_html()`` is one self-contained page
(figures embedded as PNG), ``to_markdown()`` Markdown (figures embedded, or written as PNG files
next to it by ``save``). ``save("report.html")`` / ``save("report.md")`` picks by suffix.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from .plots import plot_comparison, plot_history, plot_range_test


STYLE = (".dw-report table{border-collapse:collapse;margin:0.4em 0 0.8em}"
         ".dw-report th,.dw-report td{border:1px solid #ccc;padding:2px 8px;text-align:left}"
         ".dw-report th{background:#f3f3f3}")


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=72)
    return buffer.getvalue()


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


class Report:
    """Figures, tables and reasons of one recipe (see the module docstring)."""

    def __init__(self, recipe):
        self.recipe = recipe
        self._figures: dict[str, bytes] | None = None

    # -- content ---------------------------------------------------------------------------

    def summary(self) -> list[tuple[str, str]]:
        """(what, value) rows: the chosen hyper-parameters, the result, the budget spent."""
        r, hp = self.recipe, self.recipe.hyperparameters
        return [
            ("learning rate (1cycle)", f"{hp.min_lr:.3g} -> {hp.max_lr:.3g} -> {hp.min_lr:.3g}"),
            ("weight decay", f"{hp.weight_decay:g}"),
            ("momentum", "cyclical 0.95 -> 0.85 -> 0.95" if hp.momentum == "cyclical"
             else f"{hp.momentum:g} (constant)"),
            ("batch size", str(hp.batch_size)),
            ("final validation accuracy", _cell(r.final_accuracy)),
            ("final validation loss", _cell(r.final_loss)),
            ("budget spent", f"{r.samples_used / r.base_batch_size:.0f} of {r.budget_steps} steps "
                             f"at batch {r.base_batch_size} ({r.steps_used} optimizer steps, "
                             f"{r.samples_used} samples)"),
            ("runs", f"{r.runs} (range test, {r.runs - 2} short runs, final training)"),
            ("wall time", f"{r.seconds:.1f} s"),
        ]

    def figures(self) -> dict[str, bytes]:
        """PNG bytes of each figure, by name (rendered once)."""
        if self._figures is None:
            r = self.recipe
            figures = {"learning rate": plot_range_test(r.range_test, bounds=(
                r.decisions[0].value[0], r.decisions[0].value[1]))}
            for decision in r.decisions[1:]:
                if decision.comparison is not None:
                    # batch sizes are compared on the same samples: against epochs
                    x = "epoch" if decision.name == "batch size" else "step"
                    figures[decision.name] = plot_comparison(decision.comparison, x=x)
            figures["final training"] = plot_history(r.history, x="step")
            self._figures = {name: _png(figure) for name, figure in figures.items()}
        return self._figures

    # -- formats -----------------------------------------------------------------------------

    def to_html(self) -> str:
        """A self-contained HTML page (figures embedded)."""
        figures = self.figures()

        def table(rows: list[dict]) -> str:
            if not rows:
                return ""
            head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
            body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row.values())
                           + "</tr>" for row in rows)
            return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

        def image(name: str) -> str:
            data = base64.b64encode(figures[name]).decode()
            return f'<img alt="{html.escape(name)}" style="max-width:100%" src="data:image/png;base64,{data}">'

        parts = [f"<div class='dw-report'><style>{STYLE}</style><h2>Disciplined recipe: report</h2>",
                 table([{"": what, "chosen": value} for what, value in self.summary()])]
        for decision in self.recipe.decisions:
            parts += [f"<h3>{html.escape(decision.name.capitalize())}: "
                      f"{html.escape(_cell(decision.value) if not isinstance(decision.value, tuple) else ' to '.join(f'{v:.3g}' for v in decision.value))}</h3>",
                      f"<p>{html.escape(decision.reason[:1].upper() + decision.reason[1:])}.</p>", table(decision.table)]
            if decision.name in figures:
                parts.append(image(decision.name))
        parts += ["<h3>Final training</h3>", image("final training"), "</div>"]
        return "\n".join(parts)

    def to_markdown(self, figure_dir: str | Path | None = None, link_prefix: str = "") -> str:
        """Markdown; figures embedded as data URIs, or written to ``figure_dir`` and linked
        as ``link_prefix + file name``."""
        figures = self.figures()

        def image(name: str) -> str:
            file = name.replace(" ", "_") + ".png"
            if figure_dir is None:
                return f"![{name}](data:image/png;base64,{base64.b64encode(figures[name]).decode()})"
            (Path(figure_dir) / file).write_bytes(figures[name])
            return f"![{name}]({link_prefix}{file})"

        def table(rows: list[dict]) -> list[str]:
            if not rows:
                return []
            return ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0]),
                    *("| " + " | ".join(_cell(v) for v in row.values()) + " |" for row in rows), ""]

        lines = ["# Disciplined recipe: report", "", "| | chosen |", "|---|---|",
                 *(f"| {what} | {value} |" for what, value in self.summary()), ""]
        for decision in self.recipe.decisions:
            value = (" to ".join(f"{v:.3g}" for v in decision.value)
                     if isinstance(decision.value, tuple) else _cell(decision.value))
            lines += [f"## {decision.name.capitalize()}: {value}", "", decision.reason[:1].upper() + decision.reason[1:] + ".", "",
                      *table(decision.table)]
            if decision.name in figures:
                lines += [image(decision.name), ""]
        lines += ["## Final training", "", image("final training"), ""]
        return "\n".join(lines)

    def save(self, path: str | Path) -> Path:
        """Write ``.html`` or ``.md`` (PNG figures in ``<name>_figures/`` beside it)."""
        path = Path(path)
        if path.suffix not in (".html", ".md"):
            raise ValueError(f"path must end in .html or .md, got {str(path)!r}")
        if not path.parent.is_dir():
            raise ValueError(f"folder {str(path.parent)!r} does not exist")
        if path.suffix == ".html":
            page = ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
                    "<title>Disciplined recipe: report</title></head>\n<body>\n"
                    f"{self.to_html()}\n</body></html>\n")
            path.write_text(page, encoding="utf-8")
        else:
            folder = path.with_name(path.stem + "_figures")
            folder.mkdir(exist_ok=True)
            path.write_text(self.to_markdown(folder, link_prefix=folder.name + "/"),
                            encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return "\n".join(f"{what}: {value}" for what, value in self.summary())
