"""Write a tiny randomly-initialisable Llama (config + tokenizer, no weights) into DIR.

Run with the vLLM venv's python (it has tokenizers and transformers):
    .venv-vllm/bin/python scripts/make_tiny_model.py examples/tiny-llama
vLLM serves it with --load-format dummy. Sizes follow /work/shared/recipes/vllm-cpu.md: head_dim must be
>= 64 on the CPU backend.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

VOCAB = 512
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
    "vocab_size": VOCAB,
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
}
SPECIAL = ["<pad>", "<s>", "</s>", "<unk>"]

# A small public-domain-style corpus written here: enough merges for a 512-token vocabulary.
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "An inference orchestrator places language models on GPUs across clouds and on premises.",
    "Cost per token is the price of an hour divided by the tokens served in that hour.",
    "Tensor parallelism splits each layer across GPUs; pipeline parallelism splits the layers.",
    "Time to first token and time per output token are the latency objectives of a deployment.",
    "Hello world! How are you today? I am fine, thank you. 0123456789",
] * 20


def main(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.model_max_length = CONFIG["max_position_embeddings"]
    fast.save_pretrained(str(out))
    config = {**CONFIG, "vocab_size": max(VOCAB, len(fast))}
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        config[name] = fast.convert_tokens_to_ids(SPECIAL[{"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}[name]])
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(out.resolve())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_tiny_model.py DIR")
    main(Path(sys.argv[1]))
