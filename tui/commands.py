"""The command palette (``ctrl+p``): every dashboard key as a searchable command."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

# (title, help, target, action): target "dashboard" runs the action on the Jobs pane, "app" on the app
COMMANDS = (
    ("New job", "Open the new-job form (n)", "dashboard", "new_job"),
    ("Pause / continue job", "SIGSTOP / SIGCONT the selected job (p)", "dashboard", "pause"),
    ("Stop job", "Checkpoint and exit (s)", "dashboard", "stop"),
    ("Resume job", "Relaunch from latest.pt (r)", "dashboard", "resume"),
    ("Kill job", "SIGTERM, then SIGKILL (k)", "dashboard", "kill"),
    ("Delete job", "Remove logs and checkpoints (d)", "dashboard", "delete"),
    ("Job details", "Config, checkpoints, events, failure reason (enter)", "dashboard", "details"),
    ("Filter jobs", "Filter the table by id, kind or state (/)", "dashboard", "filter"),
    ("Toggle log-y", "Log scale on the curves (l)", "dashboard", "log_y"),
    ("More smoothing", "Increase EMA smoothing (e)", "dashboard", "smoothing(1)"),
    ("Less smoothing", "Decrease EMA smoothing (E)", "dashboard", "smoothing(-1)"),
    ("Jobs pane", "Show the jobs dashboard (1)", "app", "pane('jobs')"),
    ("Classify pane", "Classify an image with a checkpoint (2)", "app", "pane('classify')"),
    ("Grad-CAM pane", "Where the network looks (3)", "app", "pane('gradcam')"),
    ("Explain pane", "Stream an explanation from an LLM (4)", "app", "pane('explain')"),
    ("Analyze pane", "Image → CNN → Grad-CAM → explanation (5)", "app", "pane('analyze')"),
    ("Help", "Key reference (?)", "app", "help"),
)


class NcanvasCommands(Provider):
    """Matches the palette's query against :data:`COMMANDS`."""

    def _callback(self, target: str, action: str):  # noqa: ANN202 - a zero-argument callable
        app = self.app
        if target == "dashboard":
            from tui.dashboard import Dashboard

            node = app.query_one(Dashboard)
            return partial(app.call_later, node.run_action, action)
        return partial(app.call_later, app.run_action, action)

    async def discover(self) -> Hits:
        for title, help_text, target, action in COMMANDS:
            yield DiscoveryHit(title, self._callback(target, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, target, action in COMMANDS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), self._callback(target, action), help=help_text)
