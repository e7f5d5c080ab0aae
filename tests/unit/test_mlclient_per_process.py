"""One object per process: made lazily, remade after a fork, closed only by its maker."""

from __future__ import annotations

import os

from edgeloop.mlclient.per_process import PerProcess


def test_made_once_then_reset_closes_it():
    closed: list[object] = []
    holder = PerProcess(object, close=closed.append)
    first = holder.get()
    assert holder.get() is first
    holder.reset()
    assert closed == [first] and holder.get() is not first


def test_a_forked_child_gets_its_own_and_never_closes_the_parents(monkeypatch):
    closed: list[object] = []
    holder = PerProcess(object, close=closed.append)
    parents = holder.get()
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as seen from a child
    childs = holder.get()
    assert childs is not parents and closed == []
    monkeypatch.undo()
    holder.reset()  # the "parent" resets: the child's object was not made here, not closed
    assert closed == []
