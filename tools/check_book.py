#!/usr/bin/env python3
"""Check the built book in headless Chromium: pages, figures, equations, links, offline use.

Two kinds of checks run on `_build/html` (or the folder given by --html-dir):

Static checks, on the files alone:
- every local link (`<a href>`) points to a file that exists, and its `#anchor` to an `id`
  or `name` in that file;
- every resource that a page or style sheet loads (script, style sheet, image, font,
  frame, media, `@import`, CSS `url()`) is a local file that exists, and none is fetched
  from another host.

Browser checks, for each page, in headless Chromium (Debian package `chromium`) driven
over the DevTools protocol on a pipe, with the pages served by a local HTTP server on
127.0.0.1:
- the page loads with HTTP status 200 and throws no JavaScript exception;
- every `<img>` has loaded (`naturalWidth > 0`);
- MathJax rendered every equation: each `.math` element contains an `mjx-container`, no
  MathJax error box or undefined macro is shown, and no raw TeX (`$$`, `\\(`, `\\[`,
  `\\begin{`) is left in the text outside code;
- the page requests nothing from any host but the local server, and no local request
  fails;
- a PNG screenshot of the whole page is written to --screenshots.

Chromium runs with a proxy on a closed local port and with every host name resolving to
nothing, so even a page that tries cannot reach another host. Such an attempt is still
reported, because the page requested it. JavaScript files are not scanned for URLs,
because the bundled MathJax names CDN addresses that it never uses here. A script that does
fetch from another host is caught by the browser check instead. A page that only
redirects (the root index.html) gets the static checks only.

Exit status: 0 when every check passes, 1 when any fails (a per-page summary is printed),
2 when the check cannot run (no build, no Chromium).
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import functools
import html.parser
import http.server
import json
import os
import re
import select
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

CHROMIUM_PACKAGE = "chromium"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
# Schemes that fetch nothing over the network.
INLINE_SCHEMES = {"data", "blob", "about", "javascript"}
# Schemes of links that leave the book. Following one is the reader's choice, not a load.
NAVIGATION_SCHEMES = {"http", "https", "mailto", "tel", "ftp"}
# rel values of <link> whose href the browser fetches (or connects to) on its own.
FETCHING_LINK_RELS = {"stylesheet", "icon", "shortcut", "apple-touch-icon", "preload",
                      "modulepreload", "prefetch", "preconnect", "dns-prefetch", "manifest",
                      "mask-icon"}
# (tag, attribute) pairs whose value the browser loads as a resource.
RESOURCE_ATTRIBUTES = {
    ("script", "src"), ("img", "src"), ("img", "srcset"), ("source", "src"),
    ("source", "srcset"), ("iframe", "src"), ("embed", "src"), ("object", "data"),
    ("video", "src"), ("video", "poster"), ("audio", "src"), ("track", "src"),
    ("input", "src"), ("image", "href"), ("image", "xlink:href"),
}
CSS_URL = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)""", re.IGNORECASE | re.DOTALL)
CSS_IMPORT = re.compile(r"""@import\s+(['"])(.*?)\1""", re.IGNORECASE)
CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
META_REFRESH_URL = re.compile(r"url\s*=\s*['\"]?([^'\";]+)", re.IGNORECASE)
# Chromium requests /favicon.ico from every server by itself, not on the page's behalf.
BROWSER_OWN_PATHS = {"/favicon.ico"}

# Runs inside each page. Resolves to a JSON-serialisable summary once the images have
# settled and MathJax has finished its first typeset, or after `timeoutMs`.
PAGE_PROBE_JS = r"""
(async (timeoutMs) => {
  const deadline = Date.now() + timeoutMs;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
  const images = Array.from(document.images);
  for (const image of images) {
    if (image.loading === "lazy") image.loading = "eager";
  }
  const settled = images.map((image) => image.complete ? null : new Promise((resolve) => {
    image.addEventListener("load", resolve, {once: true});
    image.addEventListener("error", resolve, {once: true});
  }));
  await Promise.race([Promise.all(settled), sleep(deadline - Date.now())]);

  let mathjaxState = "absent";
  if (window.MathJax) {
    while (!(MathJax.startup && MathJax.startup.promise) && Date.now() < deadline) {
      await sleep(50);
    }
    if (MathJax.startup && MathJax.startup.promise) {
      const done = MathJax.startup.promise.then(() => "done", () => "failed");
      mathjaxState = await Promise.race([done, sleep(deadline - Date.now()).then(() => "timeout")]);
    } else {
      mathjaxState = "not started";
    }
  }

  const mathElements = Array.from(document.querySelectorAll(".math"));
  const unrendered = mathElements.filter((element) => !element.querySelector("mjx-container"))
    .map((element) => element.textContent.trim().slice(0, 80));
  const errors = Array.from(document.querySelectorAll("mjx-merror, [data-mjx-error]"))
    .map((element) => (element.getAttribute("data-mjx-error") || element.textContent).slice(0, 80));
  // MathJax's `noundefined` extension shows an undefined macro as its name in red; the
  // assistive MathML beside each equation keeps it as <mtext mathcolor="red">\name</mtext>.
  for (const element of document.querySelectorAll('mjx-assistive-mml mtext[mathcolor="red"]')) {
    if (element.textContent.startsWith("\\")) {
      errors.push("undefined macro " + element.textContent.slice(0, 60));
    }
  }

  const skipped = "pre, code, script, style, textarea, mjx-container, .highlight, .math";
  const rawTex = /\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\$[^$\n]*[\\^_][^$\n]*\$/;
  const rawText = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest(skipped)) continue;
    if (rawTex.test(node.textContent)) rawText.push(node.textContent.trim().slice(0, 80));
  }

  return {
    url: location.href,
    title: document.title,
    height: Math.max(document.documentElement.scrollHeight, document.body.scrollHeight),
    images: images.map((image) => ({
      src: image.currentSrc || image.src,
      loaded: image.complete && image.naturalWidth > 0,
    })),
    mathjax: mathjaxState,
    mathElements: mathElements.length,
    unrenderedMath: unrendered,
    mathErrors: errors,
    rawTex: rawText,
  };
})
"""


class CheckError(RuntimeError):
    """The check could not run (as opposed to a page failing it)."""


@dataclass
class PageReport:
    """Results for one built page."""

    path: str
    failures: list[str] = field(default_factory=list)
    images: int = 0
    images_loaded: int = 0
    math_elements: int = 0
    math_rendered: int = 0
    requests: int = 0
    screenshot: str | None = None
    note: str = ""


# ---------------------------------------------------------------------------------------
# Static checks


class _PageParser(html.parser.HTMLParser):
    """Collects ids, links, resource references and inline CSS of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.resources: list[tuple[str, str]] = []
        self.css_blocks: list[str] = []
        self.refresh_target: str | None = None
        self.has_math = False
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        for name in ("id", "name"):
            if values.get(name):
                self.ids.add(values[name])
        if "math" in values.get("class", "").split():
            self.has_math = True
        if values.get("style"):
            self.css_blocks.append(values["style"])
        if tag in ("a", "area") and "href" in values:
            self.links.append(values["href"])
        if tag == "link" and values.get("href"):
            rels = set(values.get("rel", "").lower().split())
            if rels & FETCHING_LINK_RELS:
                self.resources.append(("link rel=" + values.get("rel", ""), values["href"]))
        for attribute, value in values.items():
            if (tag, attribute) in RESOURCE_ATTRIBUTES and value:
                if attribute == "srcset":
                    for candidate in value.split(","):
                        if candidate.strip():
                            self.resources.append((f"{tag} {attribute}",
                                                   candidate.split()[0]))
                else:
                    self.resources.append((f"{tag} {attribute}", value))
        if tag == "meta" and values.get("http-equiv", "").lower() == "refresh":
            match = META_REFRESH_URL.search(values.get("content", ""))
            if match:
                self.refresh_target = match.group(1).strip()
        if tag == "style":
            self._in_style = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "style":
            self._in_style = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.css_blocks.append(data)


@functools.lru_cache(maxsize=None)
def parse_page(path: Path) -> _PageParser:
    """Parse one HTML file (cached, since link targets are parsed again for anchors)."""
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return parser


def css_references(text: str) -> list[tuple[str, str]]:
    """Return the (kind, URL) pairs that a style sheet loads: `@import` and `url()`."""
    text = CSS_COMMENT.sub("", text)
    references = [("css @import", match.group(2)) for match in CSS_IMPORT.finditer(text)]
    references += [("css url()", match.group(2).strip()) for match in CSS_URL.finditer(text)]
    return references


def is_external(url: str) -> bool:
    """Return whether `url` names another host (absolute or protocol-relative)."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() in INLINE_SCHEMES:
        return False
    if parts.netloc:
        return (parts.hostname or "") not in LOCAL_HOSTS
    return False


def local_target(html_dir: Path, source: Path, url: str) -> tuple[Path, str] | None:
    """Resolve a relative or root-relative URL in `source` to (file, fragment).

    Returns None for URLs that name no local file (inline data, other schemes, hosts).
    """
    parts = urlsplit(url.strip())
    if parts.scheme or parts.netloc:
        return None
    fragment = unquote(parts.fragment)
    if not parts.path:
        return source, fragment
    path = unquote(parts.path)
    base = html_dir if path.startswith("/") else source.parent
    target = (base / path.lstrip("/")).resolve()
    if target.is_dir():
        target = target / "index.html"
    return target, fragment


def check_resource(html_dir: Path, source: Path, kind: str, url: str) -> str | None:
    """Return a failure message for one loaded resource, or None if it is fine."""
    scheme = urlsplit(url.strip()).scheme.lower()
    if scheme in INLINE_SCHEMES:
        return None
    if is_external(url):
        return f"loads {url} ({kind}) from another host"
    if scheme:
        return (f"loads {url} ({kind}) by absolute URL; a built page must load its own "
                "files by relative path")
    resolved = local_target(html_dir, source, url)
    if resolved is None:
        return None
    if not resolved[0].is_relative_to(html_dir.resolve()):
        return f"loads {url} ({kind}) from outside the built book"
    if not resolved[0].is_file():
        return f"loads {url} ({kind}), but {relative(resolved[0], html_dir)} does not exist"
    return None


def check_link(html_dir: Path, source: Path, href: str) -> str | None:
    """Return a failure message for one `<a href>`, or None if its target exists."""
    scheme = urlsplit(href.strip()).scheme.lower()
    if scheme in NAVIGATION_SCHEMES or scheme in INLINE_SCHEMES:
        return None
    if scheme:
        return f"link {href} has unsupported scheme {scheme!r}"
    resolved = local_target(html_dir, source, href)
    if resolved is None:
        return None
    target, fragment = resolved
    if not target.is_relative_to(html_dir.resolve()):
        return f"link {href} points outside the built book"
    if not target.is_file():
        return f"link {href} is broken: {relative(target, html_dir)} does not exist"
    if fragment and target.suffix == ".html" and fragment not in parse_page(target).ids:
        return f"link {href} is broken: no id {fragment!r} in {relative(target, html_dir)}"
    return None


def relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def built_pages(html_dir: Path) -> list[Path]:
    """Return the book's HTML pages, leaving out Sphinx's `_static`, `_sources` and the like."""
    pages = []
    for path in sorted(html_dir.rglob("*.html")):
        parts = path.relative_to(html_dir).parts
        if any(part.startswith("_") for part in parts[:-1]):
            continue
        pages.append(path)
    return pages


def static_page_failures(html_dir: Path, page: Path) -> list[str]:
    """Run the static link and resource checks of one page."""
    parsed = parse_page(page)
    failures = []
    for kind, url in parsed.resources:
        failures.append(check_resource(html_dir, page, kind, url))
    for block in parsed.css_blocks:
        for kind, url in css_references(block):
            failures.append(check_resource(html_dir, page, "inline " + kind, url))
    for href in parsed.links:
        failures.append(check_link(html_dir, page, href))
    if parsed.refresh_target is not None:
        failures.append(check_link(html_dir, page, parsed.refresh_target))
    return [failure for failure in failures if failure]


def stylesheet_failures(html_dir: Path) -> dict[str, list[str]]:
    """Check every `.css` file of the build for external and missing `@import`/`url()`."""
    results = {}
    for path in sorted(html_dir.rglob("*.css")):
        failures = []
        for kind, url in css_references(path.read_text(encoding="utf-8", errors="replace")):
            failures.append(check_resource(html_dir, path, kind, url))
        failures = [failure for failure in failures if failure]
        if failures:
            results[relative(path, html_dir)] = failures
    return results


# ---------------------------------------------------------------------------------------
# Local HTTP server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def start_server(html_dir: Path) -> http.server.ThreadingHTTPServer:
    """Serve `html_dir` on 127.0.0.1 at a free port, in a daemon thread."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, name="book-server", daemon=True).start()
    return server


def closed_local_port() -> int:
    """Return a local port that nothing listened on a moment ago, as a proxy that refuses all.

    NOTE: another process could bind the port before Chromium uses it. The host-resolver
    rule in `chromium_arguments` still keeps every host name from resolving.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------------------------------
# Chromium over the DevTools protocol


class DevToolsPipe:
    """The DevTools protocol over Chromium's --remote-debugging-pipe (NUL-framed JSON).

    Chromium reads commands from its file descriptor 3 and writes replies and events to
    its file descriptor 4.
    """

    def __init__(self, command_fd: int, reply_fd: int):
        self._command_fd = command_fd
        self._reply_fd = reply_fd
        self._buffer = b""
        self._last_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session_id: str | None = None,
             timeout: float = 30.0) -> dict:
        """Send one command and return its result, keeping the events that arrive meanwhile."""
        self._last_id += 1
        command_id = self._last_id
        message: dict = {"id": command_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        data = json.dumps(message).encode() + b"\0"
        while data:
            written = os.write(self._command_fd, data)
            data = data[written:]
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline, method)
            if reply.get("id") == command_id:
                if "error" in reply:
                    raise CheckError(f"DevTools command {method} failed: "
                                     f"{reply['error'].get('message', reply['error'])}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for_event(self, method: str, session_id: str, timeout: float) -> dict | None:
        """Return the first event `method` of the session, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == session_id:
                    return event
            try:
                message = self._receive(deadline, method)
            except TimeoutError:
                return None
            if "method" in message:
                self.events.append(message)

    def take_events(self, session_id: str) -> list[dict]:
        """Remove and return the events of one session received so far."""
        session_events = [event for event in self.events if event.get("sessionId") == session_id]
        self.events = [event for event in self.events if event.get("sessionId") != session_id]
        return session_events

    def _receive(self, deadline: float, waiting_for: str) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out waiting for {waiting_for} from Chromium")
            ready, _, _ = select.select([self._reply_fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._reply_fd, 1 << 20)
            if not chunk:
                raise CheckError("Chromium closed the DevTools pipe, so it probably "
                                 "crashed; see chromium.log in the screenshots folder")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)


def find_chromium(explicit: str | None) -> str:
    """Return the Chromium executable, or raise CheckError naming the package to install."""
    candidate = explicit or shutil.which("chromium")
    if candidate and shutil.which(candidate):
        return shutil.which(candidate)
    raise CheckError(
        f"Chromium not found ({explicit or 'chromium'} is not an executable on PATH). "
        f"Install the Debian package `{CHROMIUM_PACKAGE}`: "
        f"apt-get update && apt-get install -y {CHROMIUM_PACKAGE}"
    )


def _high_fd(fd: int) -> int:
    """Duplicate `fd` to a number of at least 10 (close-on-exec) and close the original.

    Chromium expects the pipe ends on descriptors 3 and 4, and an end that already sat on
    3 or 4 could be overwritten while the child's descriptors are set up.
    """
    duplicate = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return duplicate


def chromium_arguments(executable: str, profile: str, width: int, height: int) -> list[str]:
    """Return Chromium's command line: headless, fresh profile, no route to other hosts."""
    return [
        executable,
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars",
        "--mute-audio", "--no-default-browser-check",
        f"--user-data-dir={profile}",
        # Send everything but loopback to a proxy on a closed port, and resolve no host
        # name, so that no request can leave this machine.
        f"--proxy-server=http://127.0.0.1:{closed_local_port()}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--window-size={width},{height}",
        "--remote-debugging-pipe",
        "about:blank",
    ]


class Browser:
    """One headless Chromium with a fresh profile, driven over a DevTools pipe."""

    def __init__(self, executable: str, log_path: Path, width: int, height: int):
        self.height = height
        self._profile = tempfile.mkdtemp(prefix="check-book-chromium-")
        command_read, command_write = (_high_fd(fd) for fd in os.pipe())
        reply_read, reply_write = (_high_fd(fd) for fd in os.pipe())
        arguments = chromium_arguments(executable, self._profile, width, height)

        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        try:
            # posix_spawn sets up the child's descriptors without running Python code in
            # the child, which is safe while the HTTP server thread runs. The standard
            # streams come first, so that a log or null descriptor on 3 or 4 is copied
            # before the pipe ends replace it.
            self.pid = os.posix_spawn(executable, arguments, os.environ, file_actions=[
                (os.POSIX_SPAWN_DUP2, null_fd, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
                (os.POSIX_SPAWN_DUP2, command_read, 3),
                (os.POSIX_SPAWN_DUP2, reply_write, 4),
            ], setsid=True)
        finally:
            for fd in (log_fd, null_fd, command_read, reply_write):
                os.close(fd)

        self.pipe = DevToolsPipe(command_write, reply_read)
        self._fds = (command_write, reply_read)
        try:
            self.version = self.pipe.send("Browser.getVersion", timeout=60).get("product", "?")
        except (CheckError, TimeoutError) as error:
            self.close()
            raise CheckError(f"Chromium did not start: {error}. "
                             f"See its log in {log_path}") from None

    def new_session(self, width: int, height: int) -> str:
        """Open a tab and return the DevTools session id attached to it."""
        target = self.pipe.send("Target.createTarget", {"url": "about:blank"})
        attached = self.pipe.send("Target.attachToTarget",
                                  {"targetId": target["targetId"], "flatten": True})
        session = attached["sessionId"]
        for method in ("Page.enable", "Network.enable", "Runtime.enable"):
            self.pipe.send(method, session_id=session)
        self.pipe.send("Network.setCacheDisabled", {"cacheDisabled": True}, session_id=session)
        self.pipe.send("Emulation.setDeviceMetricsOverride",
                       {"width": width, "height": height, "deviceScaleFactor": 1,
                        "mobile": False}, session_id=session)
        return session

    def _wait(self, timeout: float) -> bool:
        """Reap Chromium if it exits within `timeout` seconds, and return whether it did."""
        deadline = time.monotonic() + timeout
        while True:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def close(self) -> None:
        """Close Chromium (politely, then by signal to its process id) and its profile."""
        try:
            self.pipe.send("Browser.close", timeout=10)
        except (CheckError, TimeoutError, OSError):
            pass
        if not self._wait(15):
            os.kill(self.pid, signal.SIGTERM)
            if not self._wait(10):
                os.kill(self.pid, signal.SIGKILL)
                self._wait(10)
        for fd in self._fds:
            os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)


def screenshot_name(page_path: str) -> str:
    return page_path.removesuffix(".html").replace("/", "__") + ".png"


def network_failures(events: list[dict], server_origin: str) -> tuple[int, list[str]]:
    """Return the number of page requests and the failures among them.

    Fails on any request to another host, on local responses with status 400 or above,
    and on local requests that failed without being cancelled.
    """
    urls: dict[str, str] = {}
    failures: list[str] = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if urlsplit(url).scheme.lower() in INLINE_SCHEMES:
                continue
            urls[params["requestId"]] = url
            if not url.startswith(server_origin + "/"):
                failures.append(f"requested {url} from another host")
        elif method == "Network.responseReceived":
            url = params["response"]["url"]
            status = params["response"]["status"]
            if (url.startswith(server_origin + "/") and status >= 400
                    and urlsplit(url).path not in BROWSER_OWN_PATHS):
                failures.append(f"HTTP {status} for {url}")
        elif method == "Network.loadingFailed":
            url = urls.get(params["requestId"])
            if url and url.startswith(server_origin + "/") and not params.get("canceled"):
                if urlsplit(url).path not in BROWSER_OWN_PATHS:
                    failures.append(f"loading {url} failed: {params.get('errorText')}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            failures.append(f"JavaScript exception: {str(text).splitlines()[0][:200]}")
    return len(urls), failures


def check_page_in_browser(browser: Browser, session: str, report: PageReport, url: str,
                          server_origin: str, screenshot_path: Path, width: int,
                          timeout: float) -> None:
    """Load one page in the browser, fill `report` and write its screenshot."""
    pipe = browser.pipe
    pipe.send("Emulation.setDeviceMetricsOverride",
              {"width": width, "height": browser.height, "deviceScaleFactor": 1,
               "mobile": False}, session_id=session)
    pipe.take_events(session)
    navigation = pipe.send("Page.navigate", {"url": url}, session_id=session, timeout=timeout)
    if navigation.get("errorText"):
        report.failures.append(f"page did not load: {navigation['errorText']}")
        return
    if pipe.wait_for_event("Page.loadEventFired", session, timeout) is None:
        report.failures.append(f"page did not finish loading within {timeout:.0f} s")
        return
    probe = pipe.send("Runtime.evaluate",
                      {"expression": f"({PAGE_PROBE_JS})({int(timeout * 1000)})",
                       "awaitPromise": True, "returnByValue": True},
                      session_id=session, timeout=timeout + 30)
    if "exceptionDetails" in probe:
        details = probe["exceptionDetails"]
        report.failures.append("page probe failed: "
                               f"{details.get('exception', {}).get('description', details)}")
        return
    result = probe["result"]["value"]

    # Requests made while the page probe waited are part of the page's load.
    events = pipe.take_events(session)
    main_responses = [event for event in events
                      if event.get("method") == "Network.responseReceived"
                      and event["params"].get("type") == "Document"]
    if main_responses and main_responses[0]["params"]["response"]["status"] != 200:
        report.failures.append(
            f"page returned HTTP {main_responses[0]['params']['response']['status']}")
    report.requests, failures = network_failures(events, server_origin)
    report.failures.extend(failures)

    report.images = len(result["images"])
    report.images_loaded = sum(image["loaded"] for image in result["images"])
    for image in result["images"]:
        if not image["loaded"]:
            report.failures.append(f"image did not load: {image['src'][:120]}")
    report.math_elements = result["mathElements"]
    report.math_rendered = result["mathElements"] - len(result["unrenderedMath"])
    if result["mathElements"] and result["mathjax"] != "done":
        report.failures.append(f"page has {result['mathElements']} equations but MathJax "
                               f"is {result['mathjax']}")
    for text in result["unrenderedMath"]:
        report.failures.append(f"equation not rendered by MathJax: {text!r}")
    for text in result["mathErrors"]:
        report.failures.append(f"MathJax error: {text!r}")
    for text in result["rawTex"]:
        report.failures.append(f"raw TeX left in the text: {text!r}")

    write_screenshot(pipe, session, screenshot_path, width, int(result["height"]), timeout)
    report.screenshot = str(screenshot_path)
    # The full-height viewport of the screenshot can make the page load more.
    late_requests, late_failures = network_failures(pipe.take_events(session), server_origin)
    report.requests += late_requests
    report.failures.extend(late_failures)


def write_screenshot(pipe: DevToolsPipe, session: str, path: Path, width: int,
                     page_height: int, timeout: float) -> None:
    """Write a PNG of the whole page, at most 16,384 pixels tall.

    The viewport is first made as tall as the page, so that the page lays itself out
    once at full height. Capturing beyond a smaller viewport instead lets the theme's
    scroll handlers shift the layout halfway through the capture.
    """
    height = min(max(page_height, 1), 16384)
    pipe.send("Emulation.setDeviceMetricsOverride",
              {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
              session_id=session)
    pipe.send("Runtime.evaluate",
              {"expression": "window.scrollTo(0, 0); new Promise((resolve) => "
                             "requestAnimationFrame(() => setTimeout(resolve, 300)))",
               "awaitPromise": True}, session_id=session, timeout=timeout)
    shot = pipe.send("Page.captureScreenshot",
                     {"format": "png",
                      "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}},
                     session_id=session, timeout=timeout)
    path.write_bytes(base64.b64decode(shot["data"]))


# ---------------------------------------------------------------------------------------
# Driver


def run_checks(html_dir: Path, screenshots: Path, chromium: str | None, timeout: float,
               width: int, height: int) -> tuple[list[PageReport], dict[str, list[str]], str]:
    """Run the static and browser checks, and return the reports and Chromium's version.

    The reports are one per page and a mapping of style sheets to their failures.
    """
    pages = built_pages(html_dir)
    if not pages:
        raise CheckError(f"no HTML pages found under {html_dir}; build the book first "
                         "(jupyter-book build .)")
    executable = find_chromium(chromium)
    screenshots.mkdir(parents=True, exist_ok=True)

    reports = []
    for page in pages:
        path = relative(page, html_dir)
        report = PageReport(path, static_page_failures(html_dir, page))
        if parse_page(page).refresh_target is not None:
            report.note = f"redirect to {parse_page(page).refresh_target}"
        reports.append(report)
    css = stylesheet_failures(html_dir)

    server = start_server(html_dir)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        browser = Browser(executable, screenshots / "chromium.log", width, height)
        try:
            session = browser.new_session(width, height)
            for report in reports:
                if report.note:
                    continue  # a redirect page only needs its target, checked statically
                url = urljoin(origin + "/", report.path)
                try:
                    check_page_in_browser(browser, session, report, url, origin,
                                          screenshots / screenshot_name(report.path), width,
                                          timeout)
                except TimeoutError as error:
                    report.failures.append(str(error))
        finally:
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return reports, css, browser.version


def print_summary(reports: list[PageReport], css: dict[str, list[str]], html_dir: Path,
                  screenshots: Path, version: str) -> int:
    """Print one line per page with its failures under it, and return the failure count."""
    print(f"Checked {len(reports)} pages of {html_dir} in {version}; "
          f"screenshots in {screenshots}")
    width = max(len(report.path) for report in reports)
    total = 0
    for report in reports:
        status = "FAIL" if report.failures else "ok"
        if report.note:
            detail = report.note
        else:
            detail = (f"images {report.images_loaded}/{report.images}  "
                      f"equations {report.math_rendered}/{report.math_elements}  "
                      f"requests {report.requests}")
        print(f"{status:4}  {report.path:<{width}}  {detail}")
        for failure in report.failures:
            print(f"      - {failure}")
        total += len(report.failures)
    for path, failures in css.items():
        print(f"FAIL  {path}")
        for failure in failures:
            print(f"      - {failure}")
        total += len(failures)
    failed_pages = sum(1 for report in reports if report.failures)
    print(f"{failed_pages} of {len(reports)} pages failed, {len(css)} style sheets failed, "
          f"{total} failures in all")
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html-dir", type=Path, default=Path("_build/html"),
                        help="folder of the built HTML book (default: _build/html)")
    parser.add_argument("--screenshots", type=Path, default=Path("_build/screenshots"),
                        help="folder for one PNG screenshot per page "
                             "(default: _build/screenshots)")
    parser.add_argument("--chromium", default=None,
                        help="Chromium executable (default: `chromium` on PATH)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds one page may take to load and render (default: 60)")
    parser.add_argument("--width", type=int, default=1280,
                        help="viewport width in CSS pixels (default: 1280)")
    parser.add_argument("--height", type=int, default=2000,
                        help="viewport height in CSS pixels; screenshots cover the whole "
                             "page (default: 2000)")
    args = parser.parse_args(argv)

    html_dir = args.html_dir.resolve()
    if not html_dir.is_dir():
        print(f"error: {html_dir} does not exist; build the book first "
              "(jupyter-book build .)", file=sys.stderr)
        return 2
    try:
        reports, css, version = run_checks(html_dir, args.screenshots.resolve(), args.chromium,
                                           args.timeout, args.width, args.height)
    except CheckError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failures = print_summary(reports, css, html_dir, args.screenshots.resolve(), version)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
