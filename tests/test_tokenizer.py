from transformers import AutoTokenizer, PreTrainedTokenizerFast

from r1lib.tiny.tokenizer import CONNECTORS_ES, TAG_TOKENS


def test_is_a_real_fast_tokenizer_with_chat_template(tiny_tokenizer):
    assert isinstance(tiny_tokenizer, PreTrainedTokenizerFast)
    text = tiny_tokenizer.apply_chat_template([{"role": "user", "content": "3+4"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|user|>3+4<|assistant|>"


def test_tags_and_connectors_are_single_tokens(tiny_tokenizer):
    for piece in TAG_TOKENS + [" so ", CONNECTORS_ES["wait"]]:
        assert len(tiny_tokenizer(piece, add_special_tokens=False)["input_ids"]) == 1, piece


def test_round_trip_and_characters(tiny_tokenizer):
    text = "<think>3+5+9 so 8+9 wait 7</think><answer>7</answer> Hello, world!"
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.decode(ids) == text
    assert len(tiny_tokenizer("abc", add_special_tokens=False)["input_ids"]) == 3
    assert tiny_tokenizer.unk_token_id in tiny_tokenizer("é", add_special_tokens=False)["input_ids"]


def test_save_and_reload_with_autotokenizer(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "<|user|>1+2<|assistant|><answer>3</answer><|endoftext|>"
    assert loaded(text)["input_ids"] == tiny_tokenizer(text)["input_ids"]
    assert loaded.eos_token == "<|endoftext|>" and loaded.pad_token == "<|pad|>"


def test_loading_next_to_a_qwen2_config_keeps_spaces(tiny_tokenizer, random_model, tmp_path):
    """transformers 5's AutoTokenizer would build a Qwen2Tokenizer here and drop plain spaces."""
    from r1lib.models import ModelSpec, load_model_and_tokenizer

    random_model.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    _, loaded = load_model_and_tokenizer(ModelSpec(str(tmp_path)))
    text = "Hello, world! <answer>7</answer>"
    ids = loaded(text, add_special_tokens=False)["input_ids"]
    assert ids == tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert loaded.decode(ids) == text and loaded.padding_side == "left"
