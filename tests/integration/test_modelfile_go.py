"""The Modelfile's TEMPLATE rendered by Go's text/template (the engine Ollama runs it with), given the data Ollama
gives it (.System, and .Messages with the system message still among them), equals the model's own chat template
rendered by transformers."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from medtune.export import modelfile

GO = shutil.which("go")

RENDER_GO = r"""
package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct{ Role, Content string }

func main() {
	var in struct {
		Template string
		System   string
		Messages []Message
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	t := template.Must(template.New("m").Parse(in.Template))
	if err := t.Execute(os.Stdout, map[string]any{"System": in.System, "Messages": in.Messages}); err != nil {
		panic(err)
	}
}
"""

CONVERSATIONS = [
    ("You are a careful medical assistant.", [("user", "What is the antidote to paracetamol?")]),
    ("You are a careful medical assistant.", [("user", "Dose of naloxone?"), ("assistant", "0.4 mg IV, repeat."),
                                              ("user", "And intranasal?")]),
    (None, [("user", "Is {{ this }} a brace?"), ("assistant", "Yes."), ("user", "Thanks")]),
]


@pytest.fixture(scope="module")
def go_render(tmp_path_factory):
    if GO is None:
        pytest.skip("go is not installed (apt-get install golang-go): Ollama's template engine is Go's")
    folder = tmp_path_factory.mktemp("go")
    (folder / "render.go").write_text(RENDER_GO)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "GOCACHE": str(folder / "cache"), "GOPATH": str(folder)}
    subprocess.run([GO, "build", "-o", str(folder / "render"), str(folder / "render.go")], check=True, env=env,
                   cwd=folder, timeout=300)

    def render(template: str, system: str | None, messages: list[tuple[str, str]]) -> str:
        # as Ollama does: the system prompt in .System, and the system message left among .Messages
        listed = ([{"Role": "system", "Content": system}] if system else []) + [
            {"Role": r, "Content": c} for r, c in messages]
        data = json.dumps({"Template": template, "System": system or "", "Messages": listed})
        return subprocess.run([str(folder / "render")], input=data, capture_output=True, text=True,
                              check=True).stdout
    return render


def test_go_renders_the_modelfile_template_as_the_chat_template(smollm2, go_render):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    template = modelfile.go_template(modelfile.pieces(tokenizer))
    for system, messages in CONVERSATIONS:
        listed = ([{"role": "system", "content": system}] if system else []) + [
            {"role": r, "content": c} for r, c in messages]
        want = tokenizer.apply_chat_template(listed, tokenize=False, add_generation_prompt=True)
        assert go_render(template, system, messages) == want


def test_go_renders_the_phi_think_template_medtune_trains_with(smollm2, go_render):
    from transformers import AutoTokenizer

    from medtune.data.records import Message
    from medtune.data.templates import render_prompt

    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    template = modelfile.go_template(modelfile.pieces(tokenizer, "phi-think"))
    system, messages = CONVERSATIONS[1]
    want = render_prompt([Message("system", system), *(Message(r, c) for r, c in messages)], tokenizer, "phi-think")
    assert go_render(template, system, messages) == want
