"""Prompt rendering: system role fallback for templates without one, and the think prefill."""

from rollout.chat import THINK_PREFILL, full_completion, render_text


class FakeTemplateTokenizer:
    """apply_chat_template stand-in: ChatML, optionally refusing the system role like Gemma's."""

    def __init__(self, system_ok: bool):
        self.system_ok = system_ok

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        if not self.system_ok and messages[0]["role"] == "system":
            raise ValueError("System role not supported")
        body = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return body + ("<assistant>" if add_generation_prompt else "")


def test_system_prompt_goes_to_system_role_when_supported():
    text = render_text(FakeTemplateTokenizer(True), "SYS", "USER")
    assert text == "<system>SYS</system><user>USER</user><assistant>"


def test_system_prompt_is_merged_into_user_turn_when_template_refuses_it():
    text = render_text(FakeTemplateTokenizer(False), "SYS", "USER")
    assert text == "<user>SYS\n\nUSER</user><assistant>"


def test_think_prefill_opens_the_assistant_turn():
    text = render_text(FakeTemplateTokenizer(True), None, "Q", think_prefill=True)
    assert text.endswith("<assistant>" + THINK_PREFILL)
    assert full_completion("plan</think>x", think_prefill=True) == THINK_PREFILL + "plan</think>x"
    assert full_completion("x", think_prefill=False) == "x"
