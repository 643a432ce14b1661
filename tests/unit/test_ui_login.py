"""The web page's login: wrong passwords throttled per client (LoginThrottle in front of the app), and the password
taken from a flag, a file or a prompt."""

import argparse

import pytest

fastapi = pytest.importorskip("fastapi")
from fastapi import FastAPI, Form, HTTPException  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from medtune.commands import ui as ui_cmd  # noqa: E402
from medtune.errors import MedtuneError  # noqa: E402
from medtune.ui.login_throttle import LoginThrottle  # noqa: E402


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def app_with_login(clock) -> FastAPI:
    app = FastAPI(middleware=[Middleware(LoginThrottle, max_failures=3, window_s=60, clock=clock)])

    @app.post("/login")
    def login(username: str = Form(...), password: str = Form(...)):
        if password != "right":
            raise HTTPException(status_code=400, detail="Incorrect credentials.")
        return {"success": True}

    @app.post("/other")
    def other():
        return {"ok": True}

    return app


def test_wrong_passwords_are_throttled_per_client_and_the_wait_ends():
    clock = Clock()
    app = app_with_login(clock)
    attacker, user = TestClient(app, client=("10.0.0.9", 1)), TestClient(app, client=("10.0.0.7", 1))
    codes = [attacker.post("/login", data={"username": "x", "password": f"guess{i}"}).status_code for i in range(30)]
    assert codes == [400] * 3 + [429] * 27  # 30 tries no longer go through at full speed
    refused = attacker.post("/login", data={"username": "x", "password": "right"})
    assert refused.status_code == 429 and refused.headers["retry-after"] == "60"  # even the right one waits
    assert user.post("/login", data={"username": "u", "password": "right"}).status_code == 200  # others are not
    assert attacker.post("/other").status_code == 200  # only the login route is throttled
    clock.now += 61
    assert attacker.post("/login", data={"username": "x", "password": "right"}).status_code == 200
    assert attacker.post("/login", data={"username": "x", "password": "bad"}).status_code == 400  # count cleared


def args(**kw):
    return argparse.Namespace(**{"password": None, "password_file": None, "ask_password": False, **kw})


def test_the_password_comes_from_a_flag_a_file_or_a_prompt(tmp_path, monkeypatch):
    assert ui_cmd.password(args(password="s3cret")) == "s3cret"
    path = tmp_path / "pw"
    path.write_text("from file\n")
    assert ui_cmd.password(args(password_file=str(path))) == "from file"
    monkeypatch.setattr(ui_cmd.getpass, "getpass", lambda prompt: "typed")
    assert ui_cmd.password(args(ask_password=True)) == "typed"
    assert ui_cmd.password(args()) is None
    with pytest.raises(MedtuneError, match="give the password one way"):
        ui_cmd.password(args(password="a", password_file=str(path)))
    with pytest.raises(MedtuneError, match=r"--password-file .*nope: file not found"):
        ui_cmd.password(args(password_file=str(tmp_path / "nope")))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(MedtuneError, match=r"--password-file .*empty: the password is empty"):
        ui_cmd.password(args(password_file=str(tmp_path / "empty")))
