"""A loopback NDIF server for testing nnsight remote execution without NDIF.

What it is
----------
A small FastAPI + uvicorn app, bound to 127.0.0.1 only, that speaks the protocol nnsight 0.8.1's
``RemoteBackend`` speaks to NDIF (``nnsight/intervention/backends/remote.py``):

* websocket ``/subscribe``: first frame ``{"session_id": ...}``, then status frames (JSON text) and,
  on COMPLETED, one binary frame holding ``ResponseModel.pickle()`` whose ``data`` is the result blob;
* ``POST /request``: multipart, form field ``data`` (the ``RequestModel`` envelope) and file ``blob``
  (the serialized trace, zstd-compressed when the envelope says so); answers RECEIVED over HTTP;
* ``GET /response/{id}`` (non-blocking mode): the job's latest status, 404 until there is one; its
  COMPLETED status carries a URL (``GET /result/{id}``) to download the result blob from, as NDIF's
  object store would.

Requests run exactly as NDIF's model actor runs them (``ndif/services/ray/deployments/modeling/
base.py``: ``run`` + ``execute``), with NDIF's own functions, not a reimplementation:
``Remotable.from_model_key(key, dispatch=True)`` loads the model, ``model._remoteable_set_env(env)``
applies the per-request env, ``nns.prepare_traced_block`` with ``BackendRequestModel.deserialize``
rebuilds the block, ``nns.execute_traced_block`` runs it inside ``nns.block_scope()``, and
``torch.save(saved, ..., pickle_module=util.cpu_pickle_module())`` plus zstd level 3 builds the
result blob. The user's prints and warnings come back as LOG statuses through NDIF's ``LogStream``.
Only the plumbing around the actor (Redis, Ray, the object store, auth, metrics) is replaced, by
in-process queues and dicts.

The server installs an import blocker at startup: ``induction_nb`` and ``induction_head_detector``
(and any ``--block`` name) raise ImportError inside it. Together with starting it as
``python -P`` from a scratch cwd with PYTHONPATH unset, this proves that the client's own code travels
by value (``nnsight.register`` / nnsight's automatic registration of local modules) rather than
being imported on the server, which has the project installed in the same venv.

Run it by hand::

    python -P tests/ndif_loopback.py --port 8765 --model-dir /path/to/save_pretrained/folder

or from tests through the helpers at the bottom::

    from ndif_loopback import start_server, remote_model
    with start_server(model_dir) as server:
        model = remote_model(model_dir, server.url)
        with model.trace(tokens, remote=True):
            h = model.transformer.h[0].output[0].save()

Test controls (not part of NDIF's protocol): ``POST /_loopback/next`` with JSON
``{"crash": true}`` makes the server process ``os._exit(70)`` as soon as the *next* request has been
accepted and its RUNNING status sent (the client then sees its websocket closed mid-job), and
``{"delay_s": x}`` holds the next request for x seconds before it runs (to test polling, or to
``kill()`` the server while a job is in flight), ``{"error": message}`` makes the next request fail on the
server with that message (the process lives on); ``"skip": n`` lets n requests pass before the controls
apply. ``ServerHandle.crash_next_request()`` and ``ServerHandle.delay_next_request()`` call it.
``GET /_loopback/stats`` counts the requests the process accepted (``ServerHandle.requests()``).

Limits
------
* Serves one model folder, written by ``save_pretrained``, under nnsight's ``TransformersModel`` key
  (any task). The folder needs no tokenizer: with none saved, transformers 5 builds a placeholder
  tokenizer (vocabulary of 1) for the pipeline ``TransformersModel`` always builds, on both sides, so
  trace token ids; ``write_tokenizer`` adds a real one if a test wants to trace text. A request for any
  other model key gets an ERROR status worded like NDIF's deploy failure: "Could not deploy this
  model. ... is not served ...".
* CPU, one job at a time (like one NDIF replica), no execution timeout, no cancellation, no auth
  (the ``ndif-api-key`` header is accepted and ignored), no sandboxed (untrusted) execution path,
  results always inline on the websocket for blocking requests (NDIF switches to a presigned URL
  above its Redis publish limit).
* The model is loaded in float32 by default (``--dtype``), not NDIF's bfloat16, so that remote
  results can be compared bit for bit with a local float32 trace.
* ndif 0.1.2 declares Python >= 3.12; the modules used here import only torch and nnsight and work on
  3.11 when it is installed with ``pip install --no-deps --ignore-requires-python ndif==0.1.2``.
  Server requirements: fastapi, uvicorn, python-multipart, websockets, ndif (see
  ``missing_server_requirements``). The client side needs only nnsight.
"""

import argparse
import contextlib
import importlib.abc
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Modules the server must not be able to import: the project's own code has to reach it by value.
BLOCKED_MODULES = ("induction_nb", "induction_head_detector")

# Distribution name -> import name of everything the server process needs beyond nnsight/torch.
SERVER_REQUIREMENTS = {
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "python-multipart": "multipart",
    "websockets": "websockets",
    "ndif": "ndif",
}

# Exit status of the process when a test asked it to crash mid-job.
CRASH_EXIT_CODE = 70

# NDIF's own status descriptions (ndif/services/ray/deployments/modeling/base.py, api/app.py).
_RECEIVED = "Your job has been received and is waiting to be queued."
_RUNNING = "Your job has started running."
_COMPLETED = "Your job has been completed."


# =================================================================================================
# Server side (runs in its own process: `python -P tests/ndif_loopback.py ...`)
# =================================================================================================


class _ImportBlocker(importlib.abc.MetaPathFinder):
    """Refuses to import the named top-level modules (and their submodules).

    First on ``sys.meta_path``, so it wins over the editable-install finder that would otherwise
    find the project in this venv.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (blocked in the loopback NDIF server: client code "
                "must travel by value, e.g. nnsight.register(module))",
                name=fullname,
            )
        return None


def install_import_blocker(names: Iterable[str] = BLOCKED_MODULES) -> None:
    names = tuple(names)
    for name in list(sys.modules):  # nothing should have imported them yet, but be sure
        if name.partition(".")[0] in names:
            del sys.modules[name]
    sys.meta_path.insert(0, _ImportBlocker(names))


class NotServed(Exception):
    pass


def _build_app(model_dir: Path, dtype_name: str, base_url: str, preload: bool = True):
    """The FastAPI app. Heavy imports live here so that the helpers below import cheaply."""
    import asyncio
    import contextlib as cl
    import gc
    import io
    import traceback
    import uuid

    import torch
    import zstandard
    from fastapi import FastAPI, File, Form, Header, HTTPException, Request, UploadFile, WebSocket, WebSocketDisconnect
    from fastapi.responses import JSONResponse, Response
    from ndif.common.errors import RequestError
    from ndif.common.schema.request import BackendRequestModel
    from ndif.services.ray.deployments.modeling.nns import (
        block_scope,
        execute_traced_block,
        prepare_traced_block,
    )
    from ndif.services.ray.deployments.modeling.util import (
        LogStream,
        cpu_pickle_module,
        request_meta,
        resolve_dtype,
    )
    from nnsight.modeling.mixins.remotable import Remotable
    from nnsight.schema.response import ResponseModel, Status
    from nnsight.tracing.util import clean_traceback, filter_traceback

    dtype = resolve_dtype(dtype_name)
    served_dir = os.path.realpath(model_dir)

    app = FastAPI(title="loopback NDIF")
    state: dict[str, Any] = {
        "sessions": {},  # session_id -> asyncio.Queue of str (JSON) / bytes (pickled) frames
        "responses": {},  # request id -> latest non-LOG status JSON (non-blocking requests)
        "results": {},  # request id -> result blob (non-blocking requests)
        "models": {},  # model key -> loaded model
        "next": {},  # controls for the next request (crash / delay_s; "skip": n requests pass first)
        "requests": 0,  # requests accepted (POST /request), for tests that count them
        "tasks": set(),
    }
    # One job at a time, like one NDIF replica working through its queue; also keeps the
    # process-global stdout/stderr redirection and block_scope's global caches per job.
    replica_lock = asyncio.Lock()

    class Job:
        """Stands in for BackendRequestModel.respond: publishes a status to the client.

        Blocking requests (with a session id) go to that session's websocket, pickled when they
        carry the result; non-blocking ones are stored for GET /response/{id}. Thread-safe, since
        NDIF's LogStream calls it from the worker thread that runs the block.
        """

        def __init__(self, request: BackendRequestModel, loop: asyncio.AbstractEventLoop) -> None:
            self.request = request
            self.loop = loop

        def respond(self, status, description="", data=None, pickled=False, meta=None):
            response = ResponseModel(id=self.request.id, status=status, description=description, data=data, meta=meta)
            if self.request.session_id:
                frame = response.pickle() if pickled else response.model_dump_json()
                queue = state["sessions"].get(self.request.session_id)
                if queue is not None:  # the client may have gone
                    self.loop.call_soon_threadsafe(queue.put_nowait, frame)
            elif status != Status.LOG:
                state["responses"][self.request.id] = response.model_dump_json()
            return response

    def format_error(exception: BaseException) -> str:
        # BaseModelDeployment.format_error: a rejected request reads as its sentence, a failure in
        # the user's code as its traceback without nnsight internals and without this file's frames.
        if isinstance(exception, RequestError):
            return str(exception)
        tb = clean_traceback(exception.__traceback__)
        tb = filter_traceback(tb, lambda frame: frame.f_code.co_filename != __file__)
        return "".join(traceback.format_exception(type(exception), exception, tb))

    def load_model(model_key: str):
        # NDIF deploys whatever key it is asked for; this server has exactly one folder to offer.
        try:
            import_path, suffix = model_key.split(":", 1)
            data = json.loads(suffix)
            repo_id = data.get("repo_id")
        except (ValueError, AttributeError):
            repo_id = None
        if not isinstance(repo_id, str) or os.path.realpath(repo_id) != served_dir:
            raise NotServed(
                f"Model {model_key!r} is not served by this loopback server: it serves only the model in {served_dir}."
            )
        # One deployment per model, however the client spelled the folder's path.
        key = f"{import_path}:{json.dumps({**data, 'repo_id': served_dir})}"
        if key not in state["models"]:
            # BaseModelDeployment.load_from_disk: from_model_key with dispatch, then no grads.
            model = Remotable.from_model_key(key, dispatch=True, dtype=dtype_name)
            model._module.requires_grad_(False)
            state["models"][key] = model
            # As the actor does after loading: move everything alive now out of the collector's
            # reach, so the gc.collect() after each request stays cheap.
            gc.collect()
            gc.freeze()
        return state["models"][key]

    def execute(model, request: BackendRequestModel, crash: bool):
        # BaseModelDeployment.execute, on the worker thread.
        if crash:
            os._exit(CRASH_EXIT_CODE)  # a test asked for the server to die mid-job
        tracer, deserialize_ms = prepare_traced_block(
            model, request.payload, request.compress, deserialize=BackendRequestModel.deserialize
        )
        saved = execute_traced_block(tracer, dtype)
        buffer = io.BytesIO()
        torch.save(saved, buffer, pickle_module=cpu_pickle_module())
        return buffer.getvalue(), deserialize_ms

    async def run(request: BackendRequestModel, controls: dict) -> None:
        job = Job(request, asyncio.get_running_loop())
        try:
            try:
                model = await asyncio.to_thread(load_model, request.model_key)
            except Exception as exception:
                reason = str(exception) if isinstance(exception, NotServed) else format_error(exception)
                job.respond(Status.ERROR, f"Could not deploy this model. {reason}")
                return
            job.respond(Status.QUEUED, "Added to Queue at position 1.")
            async with replica_lock:
                if controls.get("delay_s"):
                    await asyncio.sleep(float(controls["delay_s"]))
                if controls.get("error"):  # a test asked for this job to fail on the server (e.g. its timeout)
                    job.respond(Status.RUNNING, _RUNNING)
                    job.respond(Status.ERROR, str(controls["error"]))
                    return
                await run_on_replica(job, model, request, bool(controls.get("crash")))
        except Exception as exception:
            job.respond(Status.ERROR, f"Loopback server error: {format_error(exception)}")

    async def run_on_replica(job: Job, model, request: BackendRequestModel, crash: bool) -> None:
        # BaseModelDeployment.run, less timeouts, cancellation, GPU accounting and telemetry.
        job.respond(Status.RUNNING, _RUNNING)
        if crash:
            await asyncio.sleep(0.2)  # let RUNNING reach the client, so it dies *mid-job*
        started = time.time()
        scope = block_scope()
        scope.__enter__()
        try:
            await asyncio.to_thread(model._remoteable_set_env, request.env)
            out, err = LogStream(job), LogStream(job)
            try:
                with cl.redirect_stdout(out), cl.redirect_stderr(err):
                    data, _ = await asyncio.to_thread(execute, model, request, crash)
            finally:
                out.flush()
                err.flush()
            exec_ms = (time.time() - started) * 1000
            if request.compress:  # BaseModelDeployment.prepare_result
                data = zstandard.ZstdCompressor(level=3).compress(data)
        except Exception as exception:
            job.respond(
                Status.ERROR,
                format_error(exception),
                meta=request_meta({}, {}, (time.time() - started) * 1000, exception),
            )
            return
        finally:
            scope.__exit__(None, None, None)
            model.interleaver.cancel()  # BaseModelDeployment.cleanup
            gc.collect()

        meta = request_meta({}, {}, exec_ms)
        if request.session_id:
            job.respond(Status.COMPLETED, _COMPLETED, data=data, pickled=True, meta=meta)
        else:  # no socket to hand it to: "upload" it and answer with a URL, as NDIF does
            state["results"][request.id] = data
            job.respond(Status.COMPLETED, _COMPLETED, data=f"{base_url}/result/{request.id}", meta=meta)

    if preload:
        # Load the model the standard client key names now, so that "the server answers" means
        # "the model is ready" and the first request is not slower than the others. A failure is
        # reported, not fatal: the request for that key will then get it as its ERROR.
        try:
            load_model(model_key(served_dir))
        except Exception:
            print("preloading the model failed; requests for it will report why:", flush=True)
            traceback.print_exc()

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    @app.post("/request")
    async def create_request(
        data: str = Form(...),
        blob: UploadFile = File(...),
        api_key: str | None = Header(default=None, alias="ndif-api-key"),
    ):
        # ndif/services/api/auth.py validate_request + app.py create_request, without auth/Redis.
        try:
            request = BackendRequestModel.model_validate_json(data)
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=f"Invalid request envelope: {exc}") from exc
        request.api_key = api_key
        request.payload = await blob.read()
        state["requests"] += 1
        if state["next"].get("skip"):  # the controls wait for a later request
            state["next"]["skip"] -= 1
            controls = {}
        else:
            controls, state["next"] = state["next"], {}
        task = asyncio.create_task(run(request, controls))
        state["tasks"].add(task)
        task.add_done_callback(state["tasks"].discard)
        response = ResponseModel(id=request.id, status=Status.RECEIVED, description=_RECEIVED)
        if not request.session_id:
            state["responses"][request.id] = response.model_dump_json()
        return Response(content=response.model_dump_json(), media_type="application/json")

    @app.get("/response/{id}")
    async def get_response(id: str):
        if id not in state["responses"]:
            raise HTTPException(status_code=404, detail=f"No response for request {id}.")
        return Response(content=state["responses"][id], media_type="application/json")

    @app.get("/result/{id}")
    async def get_result(id: str):
        if id not in state["results"]:
            raise HTTPException(status_code=404, detail=f"No result for request {id}.")
        return Response(content=state["results"].pop(id), media_type="application/octet-stream")

    @app.get("/_loopback/stats")
    async def stats():
        return JSONResponse({"requests": state["requests"]})

    @app.post("/_loopback/next")
    async def arm_next(http_request: Request):
        state["next"] = dict(await http_request.json())
        return JSONResponse(state["next"])

    @app.websocket("/subscribe")
    async def subscribe(websocket: WebSocket):
        # ndif/services/api/app.py subscribe, with an in-process queue in place of Redis pub/sub.
        await websocket.accept()
        session_id = uuid.uuid4().hex
        queue: asyncio.Queue = asyncio.Queue()
        state["sessions"][session_id] = queue  # before handing out the id: no status is lost
        await websocket.send_json({"session_id": session_id})

        async def forward() -> None:
            while True:
                frame = await queue.get()
                if isinstance(frame, bytes):
                    await websocket.send_bytes(frame)
                else:
                    await websocket.send_text(frame)

        async def watch_disconnect() -> None:
            try:
                while True:
                    message = await websocket.receive()
                    if message["type"] == "websocket.disconnect":
                        return
            except WebSocketDisconnect:
                return

        tasks = {asyncio.create_task(forward()), asyncio.create_task(watch_disconnect())}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            state["sessions"].pop(session_id, None)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback NDIF server for nnsight remote tests.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-dir", required=True, help="a folder written by save_pretrained")
    parser.add_argument("--dtype", default="float32", help="dtype to load the model in (NDIF: bfloat16)")
    parser.add_argument("--block", action="append", default=[], help="another module to block")
    parser.add_argument("--no-preload", action="store_true", help="load the model on first request")
    args = parser.parse_args(argv)

    # First thing: nothing below may import the project, and neither may any request.
    install_import_blocker((*BLOCKED_MODULES, *args.block))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder; never ask the Hub

    import uvicorn

    url = f"http://127.0.0.1:{args.port}"
    app = _build_app(Path(args.model_dir), args.dtype, url, preload=not args.no_preload)
    print(f"loopback NDIF server on {url} serving {args.model_dir}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", ws="websockets-sansio")


# =================================================================================================
# Client / pytest side
# =================================================================================================


def missing_server_requirements() -> list[str]:
    """Distributions the server needs that are not installed here (for ``pytest.skip``)."""
    return [dist for dist, module in SERVER_REQUIREMENTS.items() if importlib.util.find_spec(module) is None]


def require_server() -> None:
    """At a test module's top: skip it where the server's requirements are missing, fail on CI."""
    import pytest

    missing = missing_server_requirements()
    if missing:
        if os.environ.get("CI"):
            raise RuntimeError(f"remote tests need {missing} (make test installs them)")
        pytest.skip(f"loopback server needs {missing}", allow_module_level=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerHandle:
    """A running loopback server. Use as a context manager, or call ``stop()``."""

    def __init__(self, proc: subprocess.Popen, port: int, workdir: Path) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.workdir = workdir
        self.log_path = workdir / "server.log"

    def log(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _post_next(self, controls: dict) -> None:
        request = urllib.request.Request(
            f"{self.url}/_loopback/next",
            data=json.dumps(controls).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).read()

    def crash_next_request(self, skip: int = 0) -> None:
        """The next request (after ``skip`` others) is accepted (RECEIVED, QUEUED, RUNNING), then the server
        process exits."""
        self._post_next({"crash": True, "skip": skip})

    def fail_next_request(self, message: str, skip: int = 0) -> None:
        """The next request (after ``skip`` others) starts running, then fails on the server with ``message``
        (an ERROR status, as NDIF reports a job stopped at its execution timeout); the server lives on."""
        self._post_next({"error": message, "skip": skip})

    def requests(self) -> int:
        """How many requests this server process has accepted (``POST /request``)."""
        with urllib.request.urlopen(f"{self.url}/_loopback/stats", timeout=10) as reply:
            return json.loads(reply.read())["requests"]

    def delay_next_request(self, seconds: float) -> None:
        """The next request waits ``seconds`` before it runs (it reports QUEUED meanwhile)."""
        self._post_next({"delay_s": seconds})

    def _signal_group(self, sig: int) -> None:
        # The server is its own session/process group leader (start_new_session), so its pgid is
        # its pid: signal exactly that group, nothing else.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the server now (for tests of a server dying); waits for it to be gone."""
        # poll() reaps an exited child, so while it says None the pid (= pgid) is still ours.
        if self.proc.poll() is None:
            self._signal_group(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and remove its scratch folder."""
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        import shutil

        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def start_server(
    model_dir: "str | os.PathLike",
    port: int | None = None,
    *,
    timeout: float = 60.0,
    dtype: str = "float32",
    block: Iterable[str] = (),
    preload: bool = True,
    python: str | None = None,
) -> ServerHandle:
    """Start the loopback server for ``model_dir`` and wait (up to ``timeout`` s) until it answers.

    The process runs ``python -P`` (script folder not on sys.path) from a scratch cwd, with
    PYTHONPATH unset and HF_HUB_OFFLINE=1, in its own process group; its output goes to
    ``handle.log()``. With ``preload`` (default) it loads the model before it answers, so the first
    request is as fast as the others. ``port=None`` picks a free port. Raises RuntimeError with the
    server's output if it exits or does not answer in time.
    """
    python = python or sys.executable
    missing = missing_server_requirements()
    if missing:
        raise RuntimeError(f"the loopback NDIF server needs: pip install {' '.join(missing)}")
    attempts = 1 if port is not None else 3  # a free port can be taken before the server binds it
    for attempt in range(attempts):
        chosen = port if port is not None else free_port()
        workdir = Path(tempfile.mkdtemp(prefix="ndif-loopback-"))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error", PYTHONUNBUFFERED="1")
        command = [
            python,
            "-P",
            str(Path(__file__).resolve()),
            "--port",
            str(chosen),
            "--model-dir",
            str(Path(model_dir).resolve()),
            "--dtype",
            dtype,
        ]
        for name in block:
            command += ["--block", name]
        if not preload:
            command.append("--no-preload")
        log = open(workdir / "server.log", "wb")
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()  # the child holds its own copy
        handle = ServerHandle(proc, chosen, workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{handle.url}/ping", timeout=1) as reply:
                    if reply.status == 200:
                        return handle
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        output = handle.log()
        exited = proc.poll() is not None
        handle.stop()
        if exited and "address already in use" in output.lower() and attempt + 1 < attempts:
            continue
        state = f"exited with status {proc.returncode}" if exited else f"did not answer within {timeout:.0f} s"
        raise RuntimeError(f"loopback NDIF server {state}; its output:\n{output[-4000:]}")
    raise AssertionError("unreachable")


def model_key(model_dir: "str | os.PathLike", task: str = "text-generation") -> str:
    """The key ``remote_model(model_dir)`` sends (what NDIF would be asked to deploy)."""
    return "nnsight.modeling.transformers.TransformersModel:" + json.dumps(
        {"repo_id": str(model_dir), "revision": None, "task": task}
    )


def remote_model(
    model_dir: "str | os.PathLike",
    url: str | None = None,
    *,
    task: str = "text-generation",
    api_key: str = "loopback-test-key",
    **kwargs: Any,
):
    """A meta-loaded ``TransformersModel`` for ``model_dir`` whose ``trace(..., remote=True)`` goes to ``url``.

    Sets ``nnsight.CONFIG.API.HOST`` (when ``url`` is given) and ``CONFIG.API.APIKEY`` for the whole
    process (``NDIF_HOST`` is only read at import, so setting the env var now would do nothing).
    Two workarounds make a local folder work offline:

    * ``to_model_key()`` canonicalizes the repo id through the Hub (``HfApi().model_info``); a
      folder is its own canonical id, so it is pre-filled in ``nnsight.modeling.huggingface._ID_CACHE``.
    * nnsight 0.8.1 with transformers 5 sources no tokenizer for the meta pipeline (``check_task``
      now returns the pipeline class as a lazy string, so nnsight reads none of its ``_load_*``
      flags), and the pipeline then fails with "Impossible to guess which tokenizer to use". Passing
      ``tokenizer=<the folder>`` makes it load the folder's tokenizer (or, with no tokenizer files
      there, the placeholder transformers 5 builds). The server side does not need this: its full
      pipeline loads the tokenizer from the model path.

    ``task`` must be explicit: inferring it asks the Hub. It is part of the model key.
    Other ``kwargs`` go to ``TransformersModel`` (e.g. ``attn_implementation="eager"``, which then
    travels in the request env and switches the server's model too).
    """
    import nnsight
    from nnsight.modeling import huggingface
    from nnsight.modeling.transformers import TransformersModel

    path = str(model_dir)
    huggingface._ID_CACHE[path] = path
    if url is not None:
        nnsight.CONFIG.API.HOST = url
    nnsight.CONFIG.API.APIKEY = api_key
    kwargs.setdefault("tokenizer", path)
    return TransformersModel(path, task=task, **kwargs)


def write_tokenizer(model_dir: "str | os.PathLike", vocab_size: int | None = None) -> None:
    """Save a tiny word-level tokenizer (tokens ``t3``..``t{V-1}``, ids 0-2 special) into ``model_dir``.

    Optional: only for tests that want to trace *text* on a random-weight model (token ids work
    without it). ``vocab_size`` defaults to the config's. ``"t5 t17 t5"`` tokenizes to ``[5, 17, 5]``.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if vocab_size is None:
        vocab_size = json.loads((Path(model_dir) / "config.json").read_text())["vocab_size"]
    vocab = {"<unk>": 0, "<eos>": 1, "<pad>": 2, **{f"t{i}": i for i in range(3, vocab_size)}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", eos_token="<eos>", pad_token="<pad>"
    ).save_pretrained(str(model_dir))


if __name__ == "__main__":
    main()
