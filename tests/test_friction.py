"""The first hour of a user: each point where a mistake or a missing network gets an error or a
warning that says what happened and what to do.

Points covered elsewhere:

- a long (user, item) DataFrame passed to ``fit``: ``tests/test_preprocessing.py::
  test_long_frame_passed_to_fit_is_an_error_naming_the_fix`` (the ValueError names
  ``skcfae.preprocessing.InteractionEncoder`` and a line that fixes it);
- the README's Usage example: ``tests/test_docs.py::test_readme_usage_runs_as_written`` and,
  on the local copy of the data set it names, ``test_readme_usage_runs_on_the_local_data_it_names``;
- the progress lines (``verbose``): ``tests/test_progress.py``.
"""

import urllib.error
import urllib.request

import pytest
from sklearn.exceptions import ConvergenceWarning

from skcfae import MultDAE
from skcfae.datasets import _base, load_lastfm, load_movielens
from skcfae.datasets._movielens import _REMOTES


@pytest.fixture
def offline(monkeypatch):
    """No network: every urlopen raises the URLError of a machine without a connection; the
    retry pauses are recorded instead of slept."""
    calls = []

    def urlopen(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(_base.time, "sleep", lambda seconds: None)
    return calls


@pytest.mark.parametrize(
    "load, url",
    [
        (lambda home: load_movielens("100k", data_home=home), _REMOTES["100k"].url),
        (lambda home: load_lastfm(data_home=home), None),
    ],
    ids=["load_movielens", "load_lastfm"],
)
def test_a_loader_offline_says_what_it_could_not_download_and_how_to_go_on(
    tmp_path, offline, load, url
):
    home = tmp_path / "empty"
    with pytest.raises(OSError) as info:
        load(home)
    url = url or offline[0]
    message = str(info.value)
    # not the bare URLError: the error says what failed and the way around it
    assert type(info.value) is not urllib.error.URLError
    assert message.startswith(f"Could not download {url} ")
    assert "path=" in message and "Retry later" in message
    assert isinstance(info.value.__cause__, urllib.error.URLError)  # chained, not lost
    assert offline == [url] * _base._ATTEMPTS
    assert sorted(p.name for p in home.iterdir()) == [_base._MARKER]  # no partial file left


def test_a_short_fit_whose_validation_still_improves_warns(planted):
    X_train, fold_in, holdout = planted
    model = MultDAE(n_components=8, epochs=5, random_state=0, device="cpu")
    with pytest.warns(ConvergenceWarning, match="still improving") as record:
        model.fit(X_train, X_valid=(fold_in, holdout))
    scores = [h["valid_ndcg"] for h in model.history_]
    assert model.best_epoch_ == 5 and scores[-1] == max(scores)  # the premise: it improved
    message = str(record[0].message)
    assert "MultDAE" in message and "5 epochs" in message and "raise epochs" in message
