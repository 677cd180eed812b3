"""The command line (skcfae.cli): fit/recommend round trips by id, errors, reproduce table3."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from skcfae.cli import main

# Two taste groups: {a1, a2, a3} and {b1, b2, b3}; string ids that are not positions.
ROWS = [
    ("u-ann", "a1"), ("u-ann", "a2"),
    ("u-bob", "a1"), ("u-bob", "a2"), ("u-bob", "a3"),
    ("u-cy", "a2"), ("u-cy", "a3"), ("u-cy", "a1"),
    ("u-dan", "b1"), ("u-dan", "b2"),
    ("u-eve", "b1"), ("u-eve", "b2"), ("u-eve", "b3"),
    ("u-fay", "b2"), ("u-fay", "b3"), ("u-fay", "b1"),
]  # fmt: skip


def _write(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def fitted(tmp_path, capsys):
    train = _write(tmp_path / "train.csv", ["uid", "iid", "ts"], [(u, i, 7) for u, i in ROWS])
    model = str(tmp_path / "ease.skcfae")
    assert main(["fit", train, "--model", "EASE", "--param", "lam=1.0", "--out", model,
                 "--user-col", "uid", "--item-col", "iid"]) == 0  # fmt: skip
    return tmp_path, model, capsys.readouterr().out.strip()


def test_fit_writes_model_and_ids(fitted):
    tmp_path, model, line = fitted
    assert line.startswith("fitted EASE on 6 users, 6 items, 16 interactions in ")
    ids = json.loads((tmp_path / "ease.skcfae.ids.json").read_text())
    assert ids["users"] == sorted({u for u, _ in ROWS})
    assert ids["items"] == ["a1", "a2", "a3", "b1", "b2", "b3"]
    assert (ids["user_col"], ids["item_col"]) == ("uid", "iid")


def test_recommend_known_users_original_ids_unseen(fitted, capsys):
    tmp_path, model, _ = fitted
    users = _write(tmp_path / "users.csv", ["uid"], [("u-ann",), ("u-dan",)])
    out = str(tmp_path / "recs.csv")
    assert main(["recommend", model, "--users", users, "-n", "2", "--out", out]) == 0
    recs = _read(out)
    assert list(recs[0]) == ["uid", "rank", "iid", "score"]
    by_user = {u: [r["iid"] for r in recs if r["uid"] == u] for u in ("u-ann", "u-dan")}
    assert by_user["u-ann"][0] == "a3"  # the group's missing item, seen a1, a2 excluded
    assert by_user["u-dan"][0] == "b3"
    seen = {(u, i) for u, i in ROWS}
    assert not any((r["uid"], r["iid"]) in seen for r in recs)
    assert [r["rank"] for r in recs] == ["1", "2", "1", "2"]
    scores = [float(r["score"]) for r in recs]
    assert scores[0] >= scores[1] and scores[2] >= scores[3]


def test_recommend_user_flag_include_seen(fitted, capsys):
    _, model, _ = fitted
    capsys.readouterr()
    assert main(["recommend", model, "--user", "u-ann", "-n", "6", "--include-seen"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "uid,rank,iid,score"  # the column names given to fit
    items = [line.split(",")[2] for line in lines[1:]]
    assert sorted(items) == ["a1", "a2", "a3", "b1", "b2", "b3"]  # seen items kept


def test_recommend_new_user_histories(fitted, capsys):
    tmp_path, model, _ = fitted
    rows = [("new-1", "b1"), ("new-1", "b3"), ("new-2", "a1"), ("new-2", "zzz")]
    hist = _write(tmp_path / "hist.csv", ["person", "thing"], rows)
    out = str(tmp_path / "recs.csv")
    assert main(["recommend", model, "--history", hist, "-n", "1", "--out", out,
                 "--user-col", "person", "--item-col", "thing"]) == 0  # fmt: skip
    recs = _read(out)
    assert [(r["uid"], r["iid"]) for r in recs][0] == ("new-1", "b2")
    assert recs[1]["uid"] == "new-2" and recs[1]["iid"] in {"a2", "a3"}
    assert "zzz" in capsys.readouterr().err  # the unknown item is reported, not fatal


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "{train}", "--model", "NoSuchModel", "--out", "{model}"], "unknown model"),
        (["fit", "{tmp}/missing.csv", "--model", "EASE", "--out", "{model}"], "no such file"),
        (["fit", "{train}", "--model", "EASE", "--user-col", "uid", "--item-col", "movie",
          "--out", "{model}"],
         "no column 'movie'"),
        (["fit", "{train}", "--model", "EASE", "--param", "lam", "--out", "{model}"], "KEY=VALUE"),
        (["fit", "{train}", "--model", "EASE", "--param", "nope=1", "--out", "{model}"], "nope"),
        (["recommend", "{tmp}/missing.skcfae", "--user", "u-ann"], "no such file"),
        (["recommend", "{fitted}", "--user", "u-nobody"], "u-nobody"),
        (["fit", "{train}"], "--model"),  # argparse's own usage error
        (["reproduce", "table3", "--path", "{tmp}/nodir"], "no such directory"),
    ],
)  # fmt: skip
def test_bad_inputs_exit_2_with_one_line(fitted, capsys, argv, message):
    tmp_path, model, _ = fitted
    train = str(tmp_path / "train.csv")
    capsys.readouterr()
    fmt = {"train": train, "model": str(tmp_path / "x.skcfae"), "tmp": tmp_path, "fitted": model}
    argv = [a.format(**fmt) for a in argv]
    if "--item-col" not in argv and argv[0] == "fit" and "missing" not in argv[1]:
        argv += ["--user-col", "uid", "--item-col", "iid"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len([x for x in err.splitlines() if "error" in x]) == 1


def test_reproduce_table3_synthetic_fast(capsys):
    assert main(["reproduce", "table3", "--synthetic", "--fast"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert rows[0] == "| model | NDCG@100 | Recall@20 | fit s |"
    names = [r.split("|")[1].strip() for r in rows[1:]]
    assert names == ["Popularity", "EASE", "MultDAE", "Sw-dae"]
    values = np.array([[float(c) for c in r.split("|")[2:4]] for r in rows[1:]])
    assert ((values > 0) & (values <= 1)).all()
    assert values[1, 0] > values[0, 0]  # EASE beats popularity on the planted groups


def test_python_m_help():
    done = subprocess.run(
        [sys.executable, "-m", "skcfae", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    for command in ("fit", "recommend", "reproduce"):
        assert command in done.stdout
    assert done.stderr == ""
