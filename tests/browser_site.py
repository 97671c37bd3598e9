"""A small real web site for the browser tests: the classic exercise pages, every element the renderer
handles, other character sets, redirects, compression, errors and a slow page, on a local HTTP server."""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLASSIC = """<!DOCTYPE html>
<html><head><title>The first page</title></head>
<body>
<h1>A heading</h1>
<p>This is the first paragraph. It has <em>emphasised</em> text and <strong>strong</strong> text.</p>
<p>A second paragraph, with a <a href="one.html">link to page one</a>.</p>
</body></html>"""

PAGES = {
    "/one.html": """<title>Page one</title><h1>One</h1><p>Go to <a href="two.html">page two</a> or
        <a href="three.html">page three</a>.</p>""",
    "/two.html": """<title>Page two</title><h1>Two</h1><p>Back to <a href="one.html">page one</a>, on to
        <a href="/three.html">page three</a>.</p>""",
    "/three.html": """<title>Page three</title><h1>Three</h1><p>Round to <a href="./one.html">page one</a>;
        <a href="#end">the end</a>.</p><p id="end">The end.</p>""",
    "/dir/target.html": """<title>Target</title><p>Arrived. <a href="sibling.html">A sibling</a> and
        <a href="../one.html">up</a>.</p>""",
    "/elements.html": """<!doctype html><title>Every element</title>
<h1>Heading one</h1><h2>Heading two</h2><h3>Heading three</h3>
<p>Plain, <em>emphasis</em>, <i>italic</i>, <strong>strong</strong>, <b>bold</b>, <code>code()</code>,
entities &amp; &lt;tags&gt; &copy; &eacute;&#233;&#x00E9;.</p>
<ul><li>apple<li>banana<ul><li>small<li>large<ol><li>deep one<li>deep two</ol></ul><li>cherry</ul>
<ol start="7"><li>seventh<li>eighth<li>ninth<li>tenth</ol>
<blockquote><p>To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings
and arrows of outrageous fortune.</p></blockquote>
<pre>
def keep(spacing):
    return   "exactly"    # and this line is deliberately wider than the eighty columns of the page, much wider
	tab
</pre>
<table><caption>Beds</caption><thead><tr><th>Bed</th><th>Patient</th><th>Plan</th></tr></thead>
<tbody><tr><td>4</td><td>J. Smith</td><td>nil by mouth</td></tr>
<tr><td>5</td><td>A. Jones</td><td>discharge after the consultant's round tomorrow morning if the bloods are back and normal</td></tr></tbody></table>
<table><tr><th>a</th><th>b</th><th>c</th><th>d</th><th>e</th><th>f</th><th>g</th><th>h</th><th>i</th><th>j</th><th>k</th><th>l</th></tr>
<tr><td>alphabetical</td><td>bureaucratic</td><td>catastrophic</td><td>diagnostician</td><td>electrolytes</td>
<td>fibrillation</td><td>gastroenterology</td><td>haematological</td><td>immunisation</td><td>jurisprudence</td>
<td>ketoacidosis</td><td>laparoscopic</td></tr></table>
<p><img src="chart.png" alt="Ward chart"> <img src="spacer.gif" alt=""> <img src="photo.jpg"></p>
<form><label>Name <input name="n" value="Ada"></label> <input type="password" value="secret">
<input type="checkbox" checked> <input type="radio"> <select><option>one<option selected>two</select>
<textarea rows="2" cols="10">note</textarea> <input type="hidden" value="invisible"> <button>Send</button>
<input type="submit" value="Go"></form>
<script>document.write("script text")</script><style>p { color: red }</style>
<p hidden>hidden text</p><div style="display: none">undisplayed text</div>
<dl><dt>Term</dt><dd>Its definition.</dd></dl>
<p>Broken <b>markup <i>never closed</p><p>after the break</p>
<hr>
<p>Line one<br>line two</p>""",
    # Code in quotes and lists, as documentation sites write it (SQLite's docs quote every sample).
    "/quoted-code.html": """<!doctype html><title>Quoted code</title>
<p>The statement:</p>
<blockquote><pre>CREATE TABLE t1(
  a INTEGER,
  b TEXT
);</pre></blockquote>
<blockquote><p>A quoted paragraph, then a quote in the quote:</p><blockquote><pre>SELECT a
  FROM t1;</pre></blockquote></blockquote>
<ul><li><pre>ls -l
  | sort</pre><li>Then:<pre>cd /tmp &amp;&amp;
    make</pre></ul>
<ol><li><blockquote><pre>&gt; an e-mail quote
&gt;&gt; kept as written</pre></blockquote></ol>""",
}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that gave up waiting
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        html = "text/html; charset=utf-8"
        if path in ("/", "/index.html"):
            self.send(200, CLASSIC.encode(), html)
        elif path in PAGES:
            self.send(200, PAGES[path].encode(), html)
        elif path == "/latin1.html":
            body = "<title>Caf\xe9</title><p>Cr\xe8me br\xfbl\xe9e, \xa310, na\xefve.</p>".encode("latin-1")
            self.send(200, body, "text/html; charset=ISO-8859-1")
        elif path == "/latin1-meta.html":
            body = ('<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">'
                    "<title>Caf\xe9</title><p>Cr\xe8me br\xfbl\xe9e.</p>").encode("latin-1")  # fmt: skip
            self.send(200, body, "text/html")
        elif path == "/redirect":
            self.send(302, b"", "text/plain", Location="/dir/target.html")
        elif path == "/loop":
            self.send(302, b"", "text/plain", Location="/loop")
        elif path == "/compressed.html":
            body = gzip.compress(b"<title>Squeezed</title><p>" + b"compressed text " * 200 + b"</p>")
            self.send(200, body, html, Content_Encoding="gzip")
        elif path == "/notes.txt":
            self.send(200, b"plain   text\n  kept as is\x1b[2J\n", "text/plain; charset=utf-8")
        elif path == "/chart.png":
            self.send(200, b"\x89PNG\r\n\x1a\n" + bytes(2000), "image/png")
        elif path == "/error":
            self.send(500, b"<title>Oops</title><h1>Internal error</h1><p>Sorry.</p>", html)
        elif path == "/slow":
            time.sleep(3)
            self.send(200, b"<p>too late</p>", html)
        else:
            self.send(404, b"<title>Not here</title><h1>No such page</h1><p>The server's own 404 page.</p>", html)


@contextmanager
def serving() -> Iterator[str]:
    """The site on a free local port; yields its base URL (ending in /)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
