"""The command palette (``ctrl+p``): every dashboard key as a searchable command."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

# (title, help, target, action): the action runs on the app ("app") or on the widget of that type; a widget in one
# of the inference panes is shown first (PANE_OF).
COMMANDS = (
    ("New job", "Open the new-job form (n)", "Dashboard", "new_job"),
    ("Pause / continue job", "SIGSTOP / SIGCONT the selected job (p)", "Dashboard", "pause"),
    ("Stop job", "Checkpoint and exit (s)", "Dashboard", "stop"),
    ("Resume job", "Relaunch from latest.pt (r)", "Dashboard", "resume"),
    ("Kill job", "SIGTERM, then SIGKILL (k)", "Dashboard", "kill"),
    ("Delete job", "Remove logs and checkpoints (d)", "Dashboard", "delete"),
    ("Job details", "Config, checkpoints, events, failure reason (enter)", "Dashboard", "details"),
    ("Mark job", "Overlay the selected job's curves with the others marked (space)", "JobsTable", "toggle_mark"),
    ("Filter jobs", "Filter the table by id, kind or state (/)", "Dashboard", "filter"),
    ("Toggle log-y", "Log scale on the curves (l)", "Dashboard", "log_y"),
    ("More smoothing", "Increase EMA smoothing (e)", "Dashboard", "smoothing(1)"),
    ("Less smoothing", "Decrease EMA smoothing (E)", "Dashboard", "smoothing(-1)"),
    ("No smoothing", "Raw train curve (0)", "Dashboard", "smoothing(0)"),
    ("Toggle metric plot", "Hide / show accuracy or perplexity (m)", "Dashboard", "toggle_metric"),
    ("Toggle log follow", "Follow the log tail on / off (f)", "LogTail", "toggle_follow"),
    ("Jobs pane", "Show the jobs dashboard (1)", "app", "pane('jobs')"),
    ("Classify pane", "Classify an image with a checkpoint (2)", "app", "pane('classify')"),
    ("Grad-CAM pane", "Where the network looks (3)", "app", "pane('gradcam')"),
    ("Explain pane", "Stream an explanation from an LLM (4)", "app", "pane('explain')"),
    ("Analyze pane", "Image → CNN → Grad-CAM → explanation (5)", "app", "pane('analyze')"),
    ("Classify image", "Run the Classify pane (ctrl+r)", "ClassifyPane", "classify"),
    ("Run Grad-CAM", "Run the Grad-CAM pane (ctrl+r)", "GradCamPane", "run"),
    ("Grad-CAM: next class", "Explain the next target class (t / T)", "GradCamPane", "target(1)"),
    ("Grad-CAM: next layer", "Explain at the next conv layer (y / Y)", "GradCamPane", "layer(1)"),
    ("Grad-CAM: next method", "Grad-CAM, Grad-CAM++, guided backprop, guided Grad-CAM (m)", "GradCamPane", "method"),
    ("Grad-CAM: more opacity", "Heat-map alpha + 0.1 (a)", "GradCamPane", "alpha(0.1)"),
    ("Grad-CAM: less opacity", "Heat-map alpha - 0.1 (A)", "GradCamPane", "alpha(-0.1)"),
    ("Grad-CAM: next view", "Overlay, heat map, filters, feature maps, activation maximisation (v)", "GradCamPane",
     "view"),
    ("Generate explanation", "Run the Explain pane (ctrl+r)", "ExplainPane", "generate"),
    ("Cancel explanation", "Stop the Explain pane's generation (esc)", "ExplainPane", "cancel"),
    ("Analyze painting", "Run the Analyze pane (ctrl+r)", "AnalyzePane", "analyze"),
    ("Cancel analysis", "Stop the Analyze pane's explanation (esc)", "AnalyzePane", "cancel"),
    ("Help", "Key reference (?)", "app", "help"),
)
PANE_OF = {"ClassifyPane": "classify", "GradCamPane": "gradcam", "ExplainPane": "explain", "AnalyzePane": "analyze",
           "Dashboard": "jobs", "JobsTable": "jobs", "LogTail": "jobs"}


class NcanvasCommands(Provider):
    """Matches the palette's query against :data:`COMMANDS`."""

    def _callback(self, target: str, action: str):  # noqa: ANN202 - a zero-argument callable
        app = self.app
        if target == "app":
            return partial(app.call_later, app.run_action, action)

        async def run() -> None:
            app.action_pane(PANE_OF[target])  # type: ignore[attr-defined]
            await app.query_one(target).run_action(action)

        return partial(app.call_later, run)

    async def discover(self) -> Hits:
        for title, help_text, target, action in COMMANDS:
            yield DiscoveryHit(title, self._callback(target, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, target, action in COMMANDS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), self._callback(target, action), help=help_text)
