"""The shell reads three privates of prompt_toolkit (pyproject.toml pins it to 3.0, the tested
minor version): the renderer's last screen and size (shell/panel_control.py writes the panel
outside prompt_toolkit's screen and must know when it redrew everything) and the key
processor's bindings (shell/keys.py works them out before the first keystroke). If a release
renames them, this fails with what to do, before the shell silently draws wrong."""

from __future__ import annotations

import asyncio

import prompt_toolkit
from prompt_toolkit.application import Application, create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.key_binding.key_bindings import KeyBindingsBase
from prompt_toolkit.layout.screen import Screen
from prompt_toolkit.output import DummyOutput

WHAT_TO_DO = (f"prompt_toolkit {prompt_toolkit.__version__} no longer has {{}}, which lstm_repl/shell reads; "
              "pin prompt-toolkit in pyproject.toml to a version that has it, or change the shell and this test")


def first_frame() -> dict:
    """A minimal app's renderer and key processor, as they are right after its first frame."""
    seen: dict = {}

    async def main():
        with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
            app = Application(full_screen=False)

            def after(_app) -> None:
                if "app" not in seen:
                    seen.update(app=app, screen=getattr(app.renderer, "_last_screen", None),
                                size=getattr(app.renderer, "_last_size", None))
                    app.exit()

            app.after_render += after
            await app.run_async()

    asyncio.run(main())
    return seen


def test_the_privates_the_shell_reads_are_there_after_a_frame():
    seen = first_frame()
    renderer, processor = seen["app"].renderer, seen["app"].key_processor
    assert hasattr(renderer, "_last_screen"), WHAT_TO_DO.format("Renderer._last_screen")
    assert hasattr(renderer, "_last_size"), WHAT_TO_DO.format("Renderer._last_size")
    assert isinstance(seen["screen"], Screen), WHAT_TO_DO.format("Renderer._last_screen as a Screen after a frame")
    assert hasattr(seen["size"], "rows"), WHAT_TO_DO.format("Renderer._last_size as a Size after a frame")
    assert isinstance(getattr(processor, "_bindings", None), KeyBindingsBase), WHAT_TO_DO.format(
        "KeyProcessor._bindings")
    for method in ("get_bindings_for_keys", "get_bindings_starting_with_keys"):
        assert callable(getattr(processor._bindings, method, None)), WHAT_TO_DO.format(f"bindings.{method}")


def test_the_installed_version_is_the_pinned_minor_one():
    assert prompt_toolkit.__version__.startswith("3.0."), WHAT_TO_DO.format("the 3.0 layout")
