"""The NDIF API key never reaches anything a user displays or saves (issue 25, part 3).

A notebook that shows a config, an error, a warning or a result puts that text into a committed file,
so a sentinel key is made the active key (``RemoteConfig(api_key=...)``, ``NDIF_API_KEY`` and nnsight's
config) and every remote entry point is run over the loopback server (tests/ndif_loopback.py) once
successfully and through each failure kind; everything produced (results, their dicts, pickles, saved
files, HTML, exceptions and their whole chain, warnings, log records at DEBUG, stdout/stderr, the
server's own log) is searched for it. The failure kinds run twice: once for real on one entry point (the
server echoes the key in its message, as a server may), and once per entry point with the client's
exception carrying the key, which costs no request. Plain ``http://`` is allowed only to loopback.
"""

import dataclasses
import json
import logging
import pickle
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ndif_loopback as lb
import pytest
import torch
from test_remote import ENTRY_POINTS
from tiny_models import make_hf

from induction_nb import InputError, RemoteConfig, RemoteExecutionError, capture_attention, load_model

SENTINEL = "SENTINEL-KEY-4f1c9"
CACHE_ENV = "INDUCTION_NB_REMOTE_CACHE"  # engine.remote_jobs: where remote scans keep each chunk's result
FAILURES = ("key", "unreachable", "not_served", "job", "lost")


def assert_no_secret_in_dir(path: "str | Path", secret: str = SENTINEL) -> int:
    """Assert no file under ``path`` holds ``secret`` (as text or as bytes, e.g. inside a pickle); the
    number of files read. Point it at any on-disk cache or export folder a remote run writes."""
    files = [p for p in Path(path).rglob("*") if p.is_file()]
    for p in files:
        assert secret.encode() not in p.read_bytes(), f"the key is in {p}"
    return len(files)


def texts_of(obj, tmp_path: Path) -> list[str]:
    """Every text a user may display or save of ``obj``: repr, str, HTML, ``to_dict`` as JSON, ``settings``,
    pickle bytes (decoded loosely) and the files ``save`` / ``to_html`` write."""
    out = [repr(obj), str(obj), format(obj)]
    if isinstance(obj, BaseException):
        out += ["".join(traceback.format_exception(obj)), str(getattr(obj, "server_message", ""))]
    for name in ("_repr_html_", "summary", "to_dict"):
        if callable(getattr(obj, name, None)):
            value = getattr(obj, name)()
            out.append(json.dumps(value, default=repr) if name == "to_dict" else str(value))
    if isinstance(getattr(obj, "settings", None), dict):
        out.append(json.dumps(obj.settings, default=repr))
    try:
        out.append(pickle.dumps(obj).decode("latin-1"))
    except Exception as e:  # an unpicklable result cannot leak through a pickle
        out.append(f"unpicklable: {e}")
    for name, suffix in (("save", ".json"), ("to_html", ".html")):
        method = getattr(type(obj), name, None)  # nnsight adds a `save` to every object: not a file
        if callable(method) and getattr(method, "__module__", "").startswith("induction_nb"):
            folder = tmp_path / f"{type(obj).__name__}-{name}"
            folder.mkdir(exist_ok=True)
            getattr(obj, name)(folder / f"out{suffix}")
            assert_no_secret_in_dir(folder)
    return out


def parts_of(result) -> list:
    """``result`` and what it is made of (a tuple or list of results, a dict of them)."""
    if isinstance(result, (tuple, list)):
        return [result, *result]
    if isinstance(result, dict):
        return [result, *result.values()]
    return [result]


class Leaks:
    """Everything a test produced where a key could show: warnings, log records of every logger at DEBUG,
    the process's stdout/stderr (capfd) and the server's log; ``check(*objects)`` asserts none holds it."""

    def __init__(self, capfd, server, tmp_path):
        self.capfd, self.server, self.tmp_path = capfd, server, tmp_path
        self.records: list[logging.LogRecord] = []
        self.warnings: list = []

    def check(self, *objects) -> None:
        out, err = self.capfd.readouterr()
        texts = [out, err, self.server.handle.log()]
        texts += [f"{w.category.__name__}: {w.message} {w.filename}" for w in self.warnings]
        texts += [f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in self.records]
        for obj in objects:
            for part in parts_of(obj):
                texts += texts_of(part, self.tmp_path)
        assert_no_secret_in_dir(self.tmp_path)  # the result cache, saved results, exports
        hits = [t for t in texts if SENTINEL in t]
        assert not hits, hits[0][max(0, hits[0].find(SENTINEL) - 300) :][:600]


class _Collect(logging.Handler):
    def __init__(self, records):
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record):
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        self.records.append(record)


@pytest.fixture
def leaks(capfd, server, tmp_path):
    """A ``Leaks`` recording warnings and every logger at DEBUG (loggers that do not propagate, such as
    transformers', get the handler too) for the test's duration."""
    capture = Leaks(capfd, server, tmp_path)
    handler = _Collect(capture.records)
    loggers = [logging.getLogger()] + [
        logging.getLogger(n) for n, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)
    ]
    saved = [(lg, lg.level, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.disabled = False
        if lg is logging.getLogger() or not lg.propagate:
            lg.addHandler(handler)
    with warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("always")
        capture.warnings = recorded
        yield capture
    for lg, level, disabled in saved:
        lg.setLevel(level)
        lg.disabled = disabled
        lg.removeHandler(handler)


@pytest.fixture(scope="module", autouse=True)
def quick_pickling():
    """Test-only speed-up, same bytes sent: cloudpickle looks each function nnsight rebuilt without a
    ``__module__`` up in every module of ``sys.modules`` (~1.3 s of client time per request here, nearly
    all of it); remember each answer for the module's run."""
    import weakref

    from cloudpickle import cloudpickle as cp

    slow, known = cp._whichmodule, weakref.WeakKeyDictionary()

    def which(obj, name):
        if getattr(obj, "__module__", None) is not None:
            return obj.__module__
        try:
            answers = known.setdefault(obj, {})
        except TypeError:  # not weakly referable: look it up as cloudpickle does
            return slow(obj, name)
        if name not in answers:
            answers[name] = slow(obj, name)
        return answers[name]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cp, "_whichmodule", which)
        yield


class Server:
    """The module's loopback server, started again if a test crashed it (the ``lost`` test does). It loads
    the model on its first request, so it can boot while the model folder is being written."""

    def __init__(self, folder):
        self.folder, self.handle = folder, lb.start_server(folder, preload=False)

    @property
    def url(self) -> str:
        if not self.handle.alive():
            self.handle.stop()
            self.handle = lb.start_server(self.folder, preload=False)
        return self.handle.url


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``(folder, Server)``: a tiny llama saved while its server boots (the two take seconds each)."""
    import nnsight

    path = tmp_path_factory.mktemp("llama")
    with ThreadPoolExecutor(1) as pool:
        booting = pool.submit(Server, path)
        try:
            make_hf("llama_gqa", "sdpa").save_pretrained(path)
            lb.write_tokenizer(path)
        finally:
            running = booting.result()
    logging_was = nnsight.CONFIG.APP.REMOTE_LOGGING
    nnsight.CONFIG.APP.REMOTE_LOGGING = False  # nnsight's status spinner would write to stdout
    yield path, running
    running.handle.stop()
    nnsight.CONFIG.APP.REMOTE_LOGGING = logging_was


@pytest.fixture(scope="module")
def folder(served):
    return served[0]


@pytest.fixture(scope="module")
def server(served):
    return served[1]


@pytest.fixture(autouse=True)
def sentinel_key(monkeypatch, tmp_path):
    """The sentinel is the key everywhere a key is looked up; remote scans keep their per-chunk result cache
    (``engine.remote_jobs``) in this test's own folder, which ``Leaks.check`` searches too (and a cached
    result cannot stand in for a failure another test expects)."""
    import nnsight

    monkeypatch.setenv("NDIF_API_KEY", SENTINEL)
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", SENTINEL)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def warm(folder, server):
    """A remote model and a local one whose sites are already found (discovery ran on the server with
    the sentinel key, its warnings and logs kept in ``found``); then each test's failure hits the entry
    point's own trace."""
    import nnsight

    found: dict = {}
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("always")
        mp.setenv("NDIF_API_KEY", SENTINEL)
        mp.setattr(nnsight.CONFIG.API, "APIKEY", SENTINEL)
        config = RemoteConfig(host=server.url, api_key=SENTINEL)
        model, local = load_model(folder, remote=True), load_model(folder)
        tokens = torch.tensor([[3, 4, 5, 6]])
        # sites are found once per torch module: the local model's here, without a request (copying_dla
        # traces it on the server)
        found["captures"] = [capture_attention(model, tokens, remote=config), capture_attention(local, tokens)]
    found["warnings"] = [f"{w.category.__name__}: {w.message}" for w in recorded]
    return model, local, config, found


@pytest.fixture
def config(warm, server):
    """The warm config on the server as it is now (the ``lost`` test crashes it; ``Server.url`` restarts it)."""
    return dataclasses.replace(warm[2], host=server.url)


@pytest.fixture
def sent_keys(monkeypatch):
    """The key each remote request carried (the server ignores it: this is how we know the sentinel was
    the one in use)."""
    from nnsight.intervention.backends.remote import RemoteBackend

    keys, call = [], RemoteBackend.__call__

    def spy(self, *args, **kwargs):
        keys.append(self.api_key)
        return call(self, *args, **kwargs)

    monkeypatch.setattr(RemoteBackend, "__call__", spy)
    return keys


# -- the config itself -------------------------------------------------------------------------------------


def test_config_repr_str_and_format_mask_the_key(warm, config):
    from induction_nb.engine.remote import resolve

    model = warm[0]
    resolved = resolve(model, RemoteConfig(host=config.host, api_key=SENTINEL, env={"a": 1}))
    assert resolved.api_key == SENTINEL  # what is sent is the key itself
    for c in (config, resolved, dataclasses.replace(resolved, model_key="k")):
        shown = [repr(c), str(c), format(c), f"{c!r:>10}", f"{c} {c!r}", repr([c]), str({"remote": c})]
        assert not [s for s in shown if SENTINEL in s], shown
        assert "api_key='***'" in repr(c) and f"host={c.host!r}" in repr(c)
    assert "api_key=None" in repr(RemoteConfig())
    assert pickle.loads(pickle.dumps(resolved)) == resolved  # a pickled config still works
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.api_key = "other"


@pytest.mark.parametrize("host", ["http://127.0.0.1:9", "http://127.3.2.1", "http://localhost:8080/", "http://[::1]:9"])
def test_plain_http_is_allowed_for_loopback(host, warm):
    from induction_nb.engine.remote import resolve

    model = warm[0]
    assert resolve(model, RemoteConfig(host=host, model_key="k")).host == host.rstrip("/")


@pytest.mark.parametrize("host", ["http://ndif.example.org", "http://localhost.example.org", "http://10.0.0.1:8001"])
def test_plain_http_is_refused_for_any_other_host(host, warm):
    from induction_nb.engine.remote import resolve

    with pytest.raises(InputError, match=r"use https://.* ; plain http is allowed only for a loopback host") as e:
        resolve(warm[0], RemoteConfig(host=host, api_key=SENTINEL, model_key="k"))
    assert host[len("http://") :] in str(e.value) and SENTINEL not in str(e.value)


def test_https_passes_the_host_check(warm):
    from induction_nb.engine.remote import resolve

    assert resolve(warm[0], RemoteConfig(host="https://ndif.example.org/", model_key="k")).host == (
        "https://ndif.example.org"
    )


def test_cli_refuses_plain_http_and_reports_failures_without_the_key(folder, leaks):
    from induction_nb.cli import main

    argv = ["scan", str(folder), "--seq-len", "16", "--batch", "2", "--remote", "--host"]
    assert main([*argv, "http://ndif.example.org"]) == 2
    assert main([*argv, f"http://127.0.0.1:{lb.free_port()}"]) == 2
    err = leaks.capfd.readouterr().err
    assert "plain http is allowed only for a loopback host" in err and "cannot reach http://127.0.0.1" in err
    assert SENTINEL not in err
    leaks.check()


def test_site_discovery_leaks_no_key(warm, leaks):
    found = warm[3]
    assert not [w for w in found["warnings"] if SENTINEL in w]
    leaks.check(*found["captures"])


# -- every entry point: a success, then each failure kind ------------------------------------------------


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_entry_point_result_holds_no_key(entry, warm, config, leaks, sent_keys):
    model, local, _, _ = warm
    result = ENTRY_POINTS[entry](model, local, config)
    assert sent_keys and set(sent_keys) == {SENTINEL}
    assert any(r.name == "httpx" for r in leaks.records), "the request's log lines were captured"
    leaks.check(result)


def _client_failure(kind: str):
    """The exception nnsight's client raises for ``kind``, its text carrying the key (a server or a
    library that echoes the request's headers)."""
    from nnsight.intervention.backends.remote import RemoteError
    from websocket import WebSocketConnectionClosedException

    echo = f"(ndif-api-key: {SENTINEL})"
    return {
        "unreachable": ConnectionRefusedError(111, f"Connection refused {echo}"),
        "not_served": RemoteError(f"Could not deploy this model. Model 'm' is not served {echo}"),
        "job": RemoteError(f'Traceback (most recent call last):\n  File "x"\nValueError: bad key {echo}'),
        "lost": WebSocketConnectionClosedException(f"socket is already closed {echo}"),
    }[kind]


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_entry_point_failure_holds_no_key(entry, failure, warm, config, leaks, monkeypatch):
    """Each kind from each entry point; the client's exception carries the key and is raised instead of
    sending the request (the real failures, one request each, are tested below)."""
    import nnsight
    from nnsight.intervention.backends.remote import RemoteBackend

    model, local, _, _ = warm
    if failure == "key":  # no key anywhere: the sentinel cannot take part, nothing may show another
        monkeypatch.delenv("NDIF_API_KEY")
        monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", None)
        config = RemoteConfig(host=config.host)
    else:

        def fail(self, *args, **kwargs):
            assert self.api_key == SENTINEL
            raise _client_failure(failure)

        monkeypatch.setattr(RemoteBackend, "__call__", fail)
    with pytest.raises(RemoteExecutionError) as e:
        ENTRY_POINTS[entry](model, local, config)
    assert e.value.kind == failure, str(e.value)
    leaks.check(e.value)


@pytest.mark.parametrize("failure", ["unreachable", "not_served", "job"])
def test_real_failures_hold_no_key(failure, warm, config, leaks, sent_keys):
    """For real over loopback; ``job``: a per-request setting the server cannot apply, whose error echoes
    it, so the server's own message carries the key."""
    model, local, _, _ = warm
    bad = {
        "unreachable": RemoteConfig(host=f"http://127.0.0.1:{lb.free_port()}", api_key=SENTINEL),
        "not_served": dataclasses.replace(config, model_key=lb.model_key("/nowhere/else")),
        "job": dataclasses.replace(config, env={"attn_implementation": SENTINEL}),
    }[failure]
    with pytest.raises(RemoteExecutionError) as e:
        ENTRY_POINTS["detect_induction_heads"](model, local, bad)
    assert e.value.kind == failure and set(sent_keys) == {SENTINEL}, str(e.value)
    if failure == "job":
        assert "***" in e.value.server_message and "attn_implementation" in e.value.server_message
    leaks.check(e.value)


def test_real_lost_connection_holds_no_key(warm, config, server, leaks):
    """It crashes the module's server (the ``config`` fixture starts another if a later test needs one)."""
    model, local, _, _ = warm
    server.handle.crash_next_request()
    with pytest.raises(RemoteExecutionError) as e:
        ENTRY_POINTS["capture_attention"](model, local, config)
    assert e.value.kind == "lost", str(e.value)
    leaks.check(e.value)


def test_short_keys_are_scrubbed_as_tokens_only():
    from induction_nb.engine.remote import _scrub

    assert _scrub("GET http://h/ with key http", "http") == "GET http://h/ with key ***"
    assert _scrub("a-abc b abc c abcd abc.", "abc") == "a-abc b *** c abcd ***."
    assert _scrub("key: abc: rejected 'abc'", "abc") == "key: ***: rejected '***'"
    assert _scrub("x=longkey123-y", "longkey123") == "x=***-y"


def test_a_real_failure_shows_no_key_with_locals_or_pickled(warm):
    """A traceback printed with local variables (``%xmode Verbose``, ``pytest --showlocals``) and a pickle
    of every exception in the chain: the client's frames and its request/response objects held the key."""
    model, _, _, _ = warm
    bad = RemoteConfig(host=f"http://127.0.0.1:{lb.free_port()}", api_key=SENTINEL)
    with pytest.raises(RemoteExecutionError) as e:
        capture_attention(model, torch.tensor([[3, 4, 5, 6]]), remote=bad)
    assert e.value.kind == "unreachable"
    text = "".join(traceback.TracebackException.from_exception(e.value, capture_locals=True).format())
    assert SENTINEL not in text
    err, seen = e.value, 0
    while err is not None:
        try:
            blob = pickle.dumps(err)
        except Exception:
            blob = b""
        assert SENTINEL.encode() not in blob, type(err).__name__
        err, seen = err.__cause__ or err.__context__, seen + 1
    assert seen >= 2
