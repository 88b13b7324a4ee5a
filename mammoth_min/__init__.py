"""A notebook-first, literate reference implementation of the MAmmoTH-VL recipe

Modules:

- `mammoth_min.ablations`: The seed papers' data claims, rerun on the tiny world where the truth is known: filtering, rewriting, evolution, data scale, and MLLM-DataEngine's closed loop.
- `mammoth_min.chat`: How a LLaVA-style record becomes `input_ids` and `labels`: the tokenizer, the `qwen_2_5` and `plain` templates, image-token expansion, truncation and batching.
- `mammoth_min.filter`: The quality gate between synthesis and training: an MLLM judge (MAmmoTH-VL's consistency check, MMEvol's improvement check), cheap rule filters, and a streaming, resumable driver that says why it dropped each record.
- `mammoth_min.model`: LLaVA's connector model as MAmmoTH-VL-8B uses it: a SigLIP vision tower, a two-layer GELU MLP projector and a Qwen2.5 language model, built from `transformers` parts so that the same code takes real checkpoints.
- `mammoth_min.quickstart`: The whole recipe in one call: draw the world, synthesize, filter, join the pretrained parts and train stages 1→2, evaluate with the blind baseline, and leave a checkpoint the demo opens.
- `mammoth_min.synth`: Prompt recipes (MAmmoTH-VL rewrite, MMEvol evolution, MLLM-DataEngine targeting, DataOptim templates) and the generator back ends that run them: an OpenAI-compatible HTTP client, a cache, a resumable driver, a teacher."""

__version__ = "0.0.1"
