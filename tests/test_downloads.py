"""Safety of the download machinery of skcfae.datasets: offline, file:// URLs and fakes only."""

import hashlib
import io
import re
import stat
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from skcfae.datasets import (
    _base,
    _hetrec,
    _movielens,
    _msd,
    clear_data_home,
    get_data_home,
    load_delicious,
    load_msd,
)
from skcfae.datasets._base import UnverifiedDownloadWarning, _fetch

URL = "https://example.invalid/archive.zip"


def _zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class FakeUrlopen:
    """Stands in for urllib.request.urlopen: raises ``errors`` in turn, then serves ``payload``."""

    def __init__(self, errors=(), payload=b"", url=None):
        self.errors = list(errors)
        self.payload = payload
        self.url = url
        self.calls = []

    def __call__(self, url, *, timeout=None):
        self.calls.append((url, timeout))
        if self.errors:
            raise self.errors.pop(0)
        response = io.BytesIO(self.payload)
        response.url = self.url or url
        return response


@pytest.fixture
def sleeps(monkeypatch):
    """The backoff pauses, recorded instead of slept."""
    pauses = []
    monkeypatch.setattr(_base.time, "sleep", pauses.append)
    return pauses


# ---------------------------------------------------------------------------------------
# 1. Timeout and retry
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        urllib.error.URLError("connection refused"),
        TimeoutError("timed out"),
        ConnectionResetError("reset by peer"),
        urllib.error.HTTPError(URL, 503, "Service Unavailable", {}, None),
    ],
    ids=["URLError", "TimeoutError", "ConnectionError", "http 503"],
)
def test_network_errors_are_retried_then_name_the_url(tmp_path, monkeypatch, sleeps, error):
    fake = FakeUrlopen(errors=[error] * _base._ATTEMPTS)
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    with pytest.raises(OSError) as info:
        _fetch(URL, "archive.zip", "0" * 64, tmp_path / "home")
    assert fake.calls == [(URL, _base._TIMEOUT)] * 3 and _base._TIMEOUT == 60
    assert sleeps == [_base._BACKOFF, 2 * _base._BACKOFF]
    message = str(info.value)
    assert URL in message and "3 attempts" in message
    assert "by hand" in message and "path=" in message
    assert isinstance(info.value.__cause__, type(error))
    assert [p.name for p in (tmp_path / "home").iterdir()] == [_base._MARKER]


def test_a_transient_error_is_retried_once(tmp_path, monkeypatch, sleeps):
    payload = b"hello"
    fake = FakeUrlopen(errors=[TimeoutError("timed out")], payload=payload)
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    path = _fetch(URL[:-4] + ".txt", "data.txt", hashlib.sha256(payload).hexdigest(), tmp_path)
    assert path.read_bytes() == payload
    assert len(fake.calls) == 2 and sleeps == [_base._BACKOFF]


def test_http_client_errors_are_not_retried(tmp_path, monkeypatch, sleeps):
    fake = FakeUrlopen(errors=[urllib.error.HTTPError(URL, 404, "Not Found", {}, None)])
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    with pytest.raises(OSError, match=re.escape(URL)) as info:
        _fetch(URL, "archive.zip", "0" * 64, tmp_path)
    assert len(fake.calls) == 1 and sleeps == []
    assert "1 attempt" in str(info.value) and "path=" in str(info.value)


def test_a_digest_mismatch_is_not_retried(tmp_path, monkeypatch, sleeps):
    fake = FakeUrlopen(payload=b"hello")
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    with pytest.raises(OSError, match="sha256"):
        _fetch(URL, "archive.zip", "0" * 64, tmp_path / "home")
    assert len(fake.calls) == 1 and sleeps == []
    assert not (tmp_path / "home" / "archive.zip").exists()


# ---------------------------------------------------------------------------------------
# 2. https only
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://example.org/a.zip", "ftp://example.org/a.zip", "a.zip"])
def test_non_https_urls_are_refused_before_any_request(tmp_path, monkeypatch, url):
    fake = FakeUrlopen()
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    with pytest.raises(ValueError, match="only https://"):
        _fetch(url, "a.zip", "0" * 64, tmp_path)
    assert fake.calls == []


def test_a_redirect_to_http_is_refused(tmp_path, monkeypatch):
    fake = FakeUrlopen(payload=b"hello", url="http://example.org/archive.zip")
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    with pytest.raises(ValueError, match="http://example.org/archive.zip"):
        _fetch(URL, "archive.zip", hashlib.sha256(b"hello").hexdigest(), tmp_path / "home")
    assert [p.name for p in (tmp_path / "home").iterdir()] == [_base._MARKER]


def test_every_remote_uses_https():
    remotes = [*_movielens._REMOTES.values(), _hetrec._LASTFM, _hetrec._DELICIOUS, _msd._MSD]
    for remote in remotes:
        assert remote.url.startswith("https://"), remote.url
    assert _msd._MSD.url.endswith("/train_triplets.txt.zip")


# ---------------------------------------------------------------------------------------
# 3. Archives without a published digest
# ---------------------------------------------------------------------------------------


def test_no_digest_refuses_before_downloading(tmp_path, monkeypatch):
    fake = FakeUrlopen(payload=b"hello")
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    with pytest.raises(OSError, match="allow_unverified=True") as info:
        _fetch(URL, "archive.zip", None, tmp_path / "home")
    assert fake.calls == [] and "path=" in str(info.value)
    assert [p.name for p in (tmp_path / "home").iterdir()] == [_base._MARKER]


def test_no_digest_local_copy_is_not_extracted_and_its_sha256_is_given(tmp_path):
    home = get_data_home(tmp_path / "home")
    archive = _zip(home / "toy.zip", {"a.txt": "1 2 3\n"})
    with pytest.raises(OSError, match=_sha256(archive)):
        _fetch(archive.as_uri(), "toy.zip", None, home)
    assert not (home / "toy").exists()
    with pytest.warns(UnverifiedDownloadWarning, match=_sha256(archive)):
        folder = _fetch(archive.as_uri(), "toy.zip", None, home, allow_unverified=True)
    assert (folder / "a.txt").read_text() == "1 2 3\n"


def test_allow_unverified_does_not_skip_a_known_digest(tmp_path):
    source = tmp_path / "data.txt"
    source.write_bytes(b"hello")
    with pytest.raises(OSError, match="sha256"):
        _fetch(source.as_uri(), "data.txt", "0" * 64, tmp_path / "home", allow_unverified=True)


DELICIOUS = (
    "userID\tbookmarkID\ttagID\ttimestamp\r\n8\t1\t1\t1289255362000\r\n9\t5\t3\t1300000000000\r\n"
)


def test_load_delicious_download_needs_allow_unverified(tmp_path, monkeypatch):
    archive = _zip(
        tmp_path / "hetrec2011-delicious-2k.zip",
        {"user_taggedbookmarks-timestamps.dat": DELICIOUS},
    )
    monkeypatch.setattr(_hetrec, "_DELICIOUS", _base._Remote(archive.as_uri()))
    home = tmp_path / "home"
    with pytest.raises(OSError, match="allow_unverified=True"):
        load_delicious(data_home=home)
    assert not (home / "hetrec2011-delicious-2k").exists()
    with pytest.warns(UnverifiedDownloadWarning, match=_sha256(archive)):
        de = load_delicious(data_home=home, allow_unverified=True)
    assert de.data.shape == (2, 2)
    with pytest.raises(ValueError, match="allow_unverified"):
        load_delicious(data_home=home, allow_unverified="yes")


def test_load_msd_download_needs_allow_unverified(tmp_path, monkeypatch):
    archive = _zip(tmp_path / "train_triplets.txt.zip", {"train_triplets.txt": "u1\ts1\t3\n"})
    monkeypatch.setattr(_msd, "_MSD", _base._Remote(archive.as_uri()))
    home = tmp_path / "home"
    with pytest.raises(OSError, match="allow_unverified=True"):
        load_msd(data_home=home)
    with pytest.warns(UnverifiedDownloadWarning):
        msd = load_msd(data_home=home, allow_unverified=True)
    assert msd.data.toarray().tolist() == [[3.0]]


# ---------------------------------------------------------------------------------------
# 4. Safe zip extraction
# ---------------------------------------------------------------------------------------


def _symlink_zip(path: Path) -> Path:
    info = zipfile.ZipInfo("toy/link")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("toy/a.txt", "x")
        archive.writestr(info, "/etc/passwd")
    return path


@pytest.mark.parametrize(
    "member, match",
    [
        ("../evil.txt", "unsafe member '../evil.txt'"),
        ("toy/../../evil.txt", "unsafe member"),
        ("/abs.txt", "unsafe member '/abs.txt'"),
        ("C:/evil.txt", "unsafe member"),
        ("..\\evil.txt", "unsafe member"),
    ],
)
def test_unsafe_member_names_are_refused(tmp_path, member, match):
    archive = _zip(tmp_path / "src.zip", {"toy/a.txt": "x", member: "evil"})
    assert member in zipfile.ZipFile(archive).namelist()
    home = tmp_path / "home"
    with pytest.raises(OSError, match=re.escape(match)):
        _fetch(archive.as_uri(), "toy.zip", _sha256(archive), home)
    assert not (home / "toy").exists()
    assert not list(tmp_path.rglob("evil.txt")) and not Path("/abs.txt").exists()
    assert sorted(p.name for p in home.iterdir()) == [_base._MARKER, "toy.zip"]


def test_symlink_members_are_refused(tmp_path):
    archive = _symlink_zip(tmp_path / "src.zip")
    with pytest.raises(OSError, match="symbolic link 'toy/link'"):
        _fetch(archive.as_uri(), "toy.zip", _sha256(archive), tmp_path / "home")
    assert not (tmp_path / "home" / "toy").exists()


def test_too_many_members_are_refused(tmp_path, monkeypatch):
    assert _base._MAX_MEMBERS == 100_000
    monkeypatch.setattr(_base, "_MAX_MEMBERS", 3)
    archive = _zip(tmp_path / "src.zip", {f"toy/{k}.txt": "x" for k in range(4)})
    with pytest.raises(OSError, match="4 members, more than the 3 allowed"):
        _fetch(archive.as_uri(), "toy.zip", _sha256(archive), tmp_path / "home")
    assert not (tmp_path / "home" / "toy").exists()


def test_too_large_archives_are_refused(tmp_path, monkeypatch):
    assert _base._MAX_EXTRACTED_BYTES == 8 << 30
    monkeypatch.setattr(_base, "_MAX_EXTRACTED_BYTES", 10)
    archive = _zip(tmp_path / "src.zip", {"toy/a.txt": "123456", "toy/b.txt": "78901"})
    with pytest.raises(OSError, match="11 bytes, more than the 10 allowed"):
        _fetch(archive.as_uri(), "toy.zip", _sha256(archive), tmp_path / "home")
    assert not (tmp_path / "home" / "toy").exists()


def test_interrupted_extraction_leaves_nothing_half_extracted(tmp_path, monkeypatch):
    archive = _zip(tmp_path / "src.zip", {"toy/a.txt": "new", "toy/b.txt": "new"})
    home = get_data_home(tmp_path / "home")
    (home / "toy").mkdir()
    (home / "toy" / "old.txt").write_text("old")

    def interrupted(self, path):
        Path(path, "a.txt").write_text("partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(zipfile.ZipFile, "extractall", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _fetch(archive.as_uri(), "toy.zip", _sha256(archive), home)
    assert [p.name for p in (home / "toy").iterdir()] == ["old.txt"]  # the old folder, intact
    assert not list(home.glob(".toy.*"))
    monkeypatch.undo()
    folder = _fetch(archive.as_uri(), "toy.zip", _sha256(archive), home)
    assert sorted(p.name for p in folder.rglob("*.txt")) == ["a.txt", "b.txt"]  # replaced
    assert not list(home.glob(".toy.*"))


# ---------------------------------------------------------------------------------------
# 5. clear_data_home deletes only a data home skcfae created
# ---------------------------------------------------------------------------------------


def test_clear_data_home_refuses_a_folder_without_the_marker(tmp_path):
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("keep me")
    (folder / "sub" / "data.csv").write_text("1,2")
    assert get_data_home(folder) == folder  # an existing folder gets no marker
    with pytest.raises(ValueError, match=re.escape(str(folder))):
        clear_data_home(folder)
    assert (folder / "notes.txt").read_text() == "keep me"
    assert (folder / "sub" / "data.csv").read_text() == "1,2"
    assert not (folder / _base._MARKER).exists()


def test_clear_data_home_deletes_what_skcfae_created(tmp_path, monkeypatch):
    monkeypatch.setenv("SKCFAE_DATA", str(tmp_path / "env" / "home"))
    home = get_data_home()
    assert (home / _base._MARKER).is_file()
    (home / "ml-100k").mkdir()
    (home / "ml-100k" / "u.data").write_text("1 2 3 4\n")
    clear_data_home()
    assert not home.exists() and (tmp_path / "env").is_dir()


def test_clear_data_home_on_an_absent_folder_is_a_no_op(tmp_path):
    clear_data_home(tmp_path / "absent")
    assert not (tmp_path / "absent").exists()


# ---------------------------------------------------------------------------------------
# 6. md5 is not used for security (FIPS)
# ---------------------------------------------------------------------------------------


def test_md5_is_marked_not_for_security(tmp_path, monkeypatch):
    real_md5 = hashlib.md5
    seen = []

    def md5(*args, **kwargs):
        seen.append(kwargs)
        return real_md5(*args, **kwargs)

    monkeypatch.setattr(hashlib, "md5", md5)
    path = tmp_path / "data.txt"
    path.write_bytes(b"hello")
    assert _base._file_digests(path)["md5"] == real_md5(b"hello").hexdigest()
    assert seen == [{"usedforsecurity": False}]
