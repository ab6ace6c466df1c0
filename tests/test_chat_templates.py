"""Think-prefill prompt rendering through real Jinja chat templates: ChatML (the embedded model's own),
Llama-2 ([INST] <<SYS>>) and Gemma (which raises on a system role), each set on a copy of the
embedded tokenizer. Checks where the system prompt lands, the Gemma fallback that merges it into the
user turn, and that the prompt ends with the prefill (as text and as token ids)."""
import pytest

from rollout.chat import THINK_PREFILL, render_prompt, render_text
from rollout.models import GEMMA_CHAT_TEMPLATE  # google/gemma-2-2b-it's template: no system role

# meta-llama/Llama-2-7b-chat-hf's template: the system prompt sits inside the first [INST] in <<SYS>>.
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}")

SYSTEM, USER = "Think first, then reply in JSON.", "Give a JSON object with a key \"a\"."


@pytest.fixture(scope="module")
def make_tokenizer(embedded_model_path):
    import copy

    from transformers import AutoTokenizer
    original = AutoTokenizer.from_pretrained(embedded_model_path)

    def make(template: str | None):
        tokenizer = copy.deepcopy(original)   # a copy per template: the original keeps its ChatML
        if template is not None:
            tokenizer.chat_template = template
        return tokenizer
    return make


def test_chatml_puts_system_in_its_own_turn_and_ends_with_the_prefill(make_tokenizer):
    tok = make_tokenizer(None)   # the embedded model's own ChatML template
    text = render_text(tok, SYSTEM, USER, think_prefill=True)
    assert f"<|im_start|>system\n{SYSTEM}<|im_end|>" in text, "system prompt should have its own ChatML turn"
    assert f"<|im_start|>user\n{USER}<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n" + THINK_PREFILL), "prefill should open the assistant turn"
    assert render_text(tok, SYSTEM, USER) + THINK_PREFILL == text


def test_llama2_puts_system_inside_the_first_inst_block(make_tokenizer):
    tok = make_tokenizer(LLAMA2_TEMPLATE)
    text = render_text(tok, SYSTEM, USER, think_prefill=True)
    assert text == f"{tok.bos_token}[INST] <<SYS>>\n{SYSTEM}\n<</SYS>>\n\n{USER} [/INST]{THINK_PREFILL}"


def test_gemma_merges_system_into_the_user_turn(make_tokenizer):
    tok = make_tokenizer(GEMMA_CHAT_TEMPLATE)
    with pytest.raises(Exception, match="System role not supported"):
        tok.apply_chat_template([{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
                                tokenize=False, add_generation_prompt=True)
    text = render_text(tok, SYSTEM, USER, think_prefill=True)
    assert text == (f"{tok.bos_token}<start_of_turn>user\n{SYSTEM}\n\n{USER}<end_of_turn>\n"
                    f"<start_of_turn>model\n{THINK_PREFILL}")
    assert "system" not in text, "Gemma has no system role: no system turn may appear"


@pytest.mark.parametrize("template", [None, LLAMA2_TEMPLATE, GEMMA_CHAT_TEMPLATE], ids=["chatml", "llama2", "gemma"])
def test_prompt_ids_end_with_the_prefill(make_tokenizer, template):
    tok = make_tokenizer(template)
    ids = render_prompt(tok, SYSTEM, USER, think_prefill=True)
    text = render_text(tok, SYSTEM, USER, think_prefill=True)
    assert ids == tok(text, add_special_tokens=False)["input_ids"], "render_prompt must add no special tokens"
    assert tok.decode(ids).endswith(THINK_PREFILL), "the token ids should decode to a prompt ending in the prefill"


@pytest.mark.parametrize("template", [None, GEMMA_CHAT_TEMPLATE], ids=["chatml", "gemma"])
def test_prefill_only_appends_tokens_when_the_turn_opens_with_a_newline(make_tokenizer, template):
    # ChatML and Gemma open the reply after "\n", so the plain prompt's tokens are a prefix of the
    # prefilled one. Llama-2 opens it right after "[/INST]": with this byte-level BPE "]<" merges into
    # one token, so there the prefill also changes the prompt's last token (harmless for rollouts,
    # which feed ids, but the model sees a rare token pair).
    tok = make_tokenizer(template)
    ids, plain = render_prompt(tok, SYSTEM, USER, think_prefill=True), render_prompt(tok, SYSTEM, USER)
    assert ids[:len(plain)] == plain and tok.decode(ids[len(plain):]) == THINK_PREFILL, \
        "the prefill should only add tokens at the end of the plain prompt"
