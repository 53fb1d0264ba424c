"""Build progress as a user sees it: one line per step in a log, a live bar on a terminal."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from pipeline.progress import steps


def test_off_a_terminal_every_step_is_one_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    with steps(console=Console(file=io.StringIO(), force_terminal=False)) as show:
        show("ws: build Step 1/3 : FROM docpipe/debian-novnc")
        show("ws: build Step 2/3 : RUN apt-get install -y git")
    assert capsys.readouterr().err.splitlines() == [
        "docpipe: ws: build Step 1/3 : FROM docpipe/debian-novnc",
        "docpipe: ws: build Step 2/3 : RUN apt-get install -y git",
    ]


def test_on_a_terminal_each_build_gets_a_bar_and_doc_words_stay_plain() -> None:
    screen = io.StringIO()
    with steps(console=Console(file=screen, force_terminal=True, width=120)) as show:
        show("ws-a: build Step 1/4 : FROM base")
        show("ws-b: build Step 5/9 : RUN make")
        show("ws-a: build Step 3/4 : RUN echo [bold red]hi[/bold red]")
        show("pushed [link=http://evil]image[/link]")
    out = screen.getvalue()
    assert "ws-a: build RUN echo [bold red]hi[/bold red]" in out and "2/4" in out  # steps 1 and 2 done
    assert "ws-b: build RUN make" in out and "4/9" in out
    assert "docpipe: pushed [link=http://evil]image[/link]" in out  # printed, not interpreted
