"""TensorBoard sample text: what the event file stores, rendered as TensorBoard's text plugin renders it,
shows every completion exactly as generated (quotes, <think>, ``` fences; nothing escaped twice)."""
import html
import re

import numpy as np

from grpo.monitor import Monitor, group_markdown

COMPLETIONS = ['```json\n{"name": "a & b", "tags": ["<x>", "y\\"z"]}\n```',
               '<think>\nkeys: "name", then "tags"\n\n</think>\n{"name": "c"}',
               "Sure!\n\n```json\n{\"name\": 1}\n```", ""]


def logged_text(log_dir, tag):
    """The strings stored under `tag`, read back from the event file."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util
    events = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    events.Reload()
    return [tensor_util.make_ndarray(e.tensor_proto).item().decode("utf-8") for e in events.Tensors(f"{tag}/text_summary")]


def shown(markdown):
    """The text a browser shows for each code block of TensorBoard's rendering of `markdown`."""
    from tensorboard.plugin_util import markdown_to_safe_html
    return [html.unescape(block) for block in re.findall(r"<pre><code>(.*?)</code></pre>", markdown_to_safe_html(markdown), re.S)]


def test_a_logged_group_shows_prompt_and_completions_verbatim(tmp_path):
    G = len(COMPLETIONS)
    md = group_markdown("json/simple/t/1", 'Return {"name": ...} as JSON.', COMPLETIONS, np.linspace(0, 1, G),
                        {"format": np.ones(G), "schema": np.zeros(G)}, np.array([-1.5, -0.5, 0.5, 1.5]))
    monitor = Monitor(tmp_path)
    monitor.markdown("samples", md, step=1)
    monitor.text("curriculum", "step 1: {'new': 2, 'reason': \"gated\"}", step=1)
    monitor.close()
    stored = logged_text(tmp_path, "samples")[0]
    assert '{"name": "a & b"' in stored and "&quot;" not in stored and "&amp;" not in stored, \
        "the event file holds the raw JSON; escaping is the renderer's job, done once"
    blocks = shown(stored)
    assert blocks[0].rstrip("\n") == 'Return {"name": ...} as JSON.', "the prompt comes first, verbatim"
    assert [b.rstrip("\n") for b in blocks[1:]] == [c for c in COMPLETIONS if c], "every completion shows as generated"
    assert "*(empty)*" in stored, "an empty completion is marked, not dropped"
    assert "| 4 | 1.000 | +1.500 | 1.00 | 0.00 |" in stored, "a table row per completion: reward, advantage, components"
    assert shown(logged_text(tmp_path, "curriculum")[0])[0].rstrip("\n") == "step 1: {'new': 2, 'reason': \"gated\"}"
