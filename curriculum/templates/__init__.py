"""JSON task templates by tier: `TEMPLATES[tier]` is a tuple of (template_id, fn(rng, pools) -> (prompt, spec))."""
from curriculum.templates import hard, medium, simple

TEMPLATES = {"simple": simple.TEMPLATES, "medium": medium.TEMPLATES, "hard": hard.TEMPLATES}
