"""Test template: one capability per run, chosen by `mode`; errors propagate as TemplateError reasons."""

import json


def run(ctx, mode, argument):
    if mode == "get":
        response = ctx.http.get(argument)
        return f"{response.status} {response.url} {response.text}"
    if mode == "get-many":
        return " ".join(str(ctx.http.get(argument).status) for _ in range(4))
    if mode == "post":
        return ctx.http.post(argument, json={"hello": "world"}, headers={"Authorization": "Bearer " + ctx.secret("API_KEY")}).text
    if mode == "secret":
        return ctx.secret(argument)
    if mode == "random":
        return ctx.random(32).hex() + " " + ctx.random(40).hex()
    if mode == "log":
        for i in range(int(argument)):
            ctx.log(f"line {i} " + "x" * 100)
        return "logged"
    if mode == "config":
        return json.dumps(ctx.config)
    raise ValueError(f"unknown mode {mode}")
