#!/usr/bin/env python3
"""The guest HTTP API of the osworld desktop, on port 5000.

Wire-compatible with the client OSWorld ships (its PythonController and
SetupController): same paths, methods, request encodings (JSON, form fields,
multipart) and response shapes. Standard library plus python3-xlib,
python3-pyatspi and python3-pil from Debian. Every request gets an answer:
unknown paths 404, malformed requests 400, failures 500, each with a JSON
body saying why; commands run with a timeout.
"""
import argparse
import email.parser
import email.policy
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib
import struct
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

HOME = os.path.expanduser('~')
DEFAULT_TIMEOUT = 120
MAX_BODY = 1 << 30
RECORDING = os.path.join(tempfile.gettempdir(), 'tfork-recording.mp4')


class HttpError(Exception):
    def __init__(self, status, message, **extra):
        super().__init__(message)
        self.status = status
        self.body = dict({'status': 'error', 'message': message}, **extra)


def session_env():
    """The desktop session's environment (D-Bus address, accessibility switches) for launched programs."""
    env = dict(os.environ)
    try:
        with open('/tmp/tfork-session.env') as f:
            for line in f:
                k, _, v = line.rstrip('\n').partition('=')
                if k:
                    env[k] = v
    except OSError:
        pass
    env.setdefault('DISPLAY', ':0')
    return env


def expand(path):
    return os.path.expandvars(os.path.expanduser(path))


# ---- screen

def png(width, height, rgb):
    """Encode 8-bit RGB as PNG (filter 0 on every row)."""
    stride = width * 3
    raw = b''.join(b'\x00' + rgb[y * stride:(y + 1) * stride] for y in range(height))

    def chunk(kind, data):
        c = kind + data
        return struct.pack('>I', len(data)) + c + struct.pack('>I', zlib.crc32(c) & 0xFFFFFFFF)

    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)) + \
        chunk(b'IDAT', zlib.compress(raw, 1)) + chunk(b'IEND', b'')


_xlock = threading.Lock()


def screenshot_png():
    """The screen with the mouse cursor drawn in, as PNG."""
    import pyautogui
    from Xlib.ext import xfixes  # noqa: F401 (registers the extension's methods)

    with _xlock:
        w, h, rgb = pyautogui._grab_rgb()
        rgb = bytearray(rgb)
        d = pyautogui._d()
        try:
            if not hasattr(d, 'xfixes_get_cursor_image'):
                raise AttributeError
            cur = d.xfixes_get_cursor_image(d.screen().root)
            cx, cy, cw, chh = cur.x - cur.xhot, cur.y - cur.yhot, cur.width, cur.height
            pixels = cur.cursor_image
        except Exception:
            p = pyautogui.position()
            cx, cy, cw, chh, pixels = p.x, p.y, 0, 0, []
            # No cursor image from the server: draw a small arrow.
            arrow = ['X', 'XX', 'X.X', 'X..X', 'X...X', 'X....X', 'X.....X', 'X......X', 'X...XXXX', 'X..X', 'X.X', 'XX', 'X']
            for ay, row in enumerate(arrow):
                for ax, ch in enumerate(row):
                    x, y = p.x + ax, p.y + ay
                    if 0 <= x < w and 0 <= y < h:
                        o = (y * w + x) * 3
                        rgb[o:o + 3] = b'\x00\x00\x00' if ch == 'X' else b'\xff\xff\xff'
        for j in range(chh):
            y = cy + j
            if not 0 <= y < h:
                continue
            for i in range(cw):
                x = cx + i
                if not 0 <= x < w:
                    continue
                argb = pixels[j * cw + i] & 0xFFFFFFFF
                a = argb >> 24
                if not a:
                    continue
                o = (y * w + x) * 3
                # premultiplied ARGB over the screen
                for k, shift in enumerate((16, 8, 0)):
                    c = (argb >> shift) & 0xFF
                    rgb[o + k] = min(255, c + rgb[o + k] * (255 - a) // 255)
        return png(w, h, bytes(rgb))


# ---- commands

def run_command(command, shell, timeout, cwd=None):
    if isinstance(command, str) and not shell:
        command = shlex.split(command)
    if not command:
        raise HttpError(400, 'command is empty')
    if isinstance(command, list) and not all(isinstance(c, str) for c in command):
        raise HttpError(400, 'command must be a string or a list of strings')
    try:
        p = subprocess.run(command, shell=bool(shell), capture_output=True, text=True, timeout=timeout,
                           env=session_env(), cwd=cwd, stdin=subprocess.DEVNULL, start_new_session=True)
    except subprocess.TimeoutExpired as e:
        return {'status': 'error', 'output': _text(e.stdout), 'error': 'command timed out after %ss' % timeout, 'returncode': -1}
    except FileNotFoundError as e:
        return {'status': 'error', 'output': '', 'error': str(e), 'returncode': 127}
    return {'status': 'success' if p.returncode == 0 else 'error', 'output': p.stdout, 'error': p.stderr, 'returncode': p.returncode}


def _text(b):
    if b is None:
        return ''
    return b.decode('utf-8', 'replace') if isinstance(b, bytes) else b


def launch(command, shell):
    if isinstance(command, str) and not shell:
        command = shlex.split(command)
    if not command:
        raise HttpError(400, 'command is empty')
    if isinstance(command, list):
        command = [expand(c) for c in command]
    try:
        p = subprocess.Popen(command, shell=bool(shell), env=session_env(), cwd=HOME, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    except FileNotFoundError as e:
        raise HttpError(400, 'cannot launch: %s' % e)
    threading.Thread(target=p.wait, daemon=True).start()
    return p.pid


# ---- windows

def wmctrl_windows():
    r = subprocess.run(['wmctrl', '-lxG'], capture_output=True, text=True, env=session_env(), timeout=10)
    out = []
    for line in r.stdout.splitlines():
        parts = line.split(None, 7)
        if len(parts) >= 7:
            wid, desk, x, y, w, h, cls = parts[:7]
            out.append({'id': wid, 'x': int(x), 'y': int(y), 'width': int(w), 'height': int(h), 'class': cls,
                        'title': parts[7].split(None, 1)[1] if len(parts) > 7 and ' ' in parts[7] else (parts[7] if len(parts) > 7 else '')})
    return out


WINDOW_WAIT_S = 30


def find_window(name, strict=False, by_class=False):
    for win in wmctrl_windows():
        hay = win['class'] if by_class else win['title']
        if (hay == name) if strict else (name.lower() in hay.lower()):
            return win
    return None


def directory_tree(path, depth=0):
    node = {'name': os.path.basename(path.rstrip('/')) or path, 'type': 'directory', 'children': []}
    if depth > 20:
        return node
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError:
        return node
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            node['children'].append(directory_tree(e.path, depth + 1))
        else:
            node['children'].append({'name': e.name, 'type': 'file'})
    return node


# ---- recording

_recording = {'proc': None}


def start_recording():
    if _recording['proc'] and _recording['proc'].poll() is None:
        raise HttpError(400, 'a recording is already running')
    import pyautogui

    w, h = pyautogui.size()
    try:
        os.unlink(RECORDING)
    except OSError:
        pass
    env = session_env()
    cmd = ['ffmpeg', '-y', '-loglevel', 'error', '-f', 'x11grab', '-video_size', '%dx%d' % (w, h), '-framerate', '10',
           '-i', env['DISPLAY'], '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', RECORDING]
    try:
        _recording['proc'] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    except FileNotFoundError:
        raise HttpError(500, 'ffmpeg is not installed in this image')
    time.sleep(0.5)
    if _recording['proc'].poll() is not None:
        err = _recording['proc'].stderr.read().decode('utf-8', 'replace')
        _recording['proc'] = None
        raise HttpError(500, 'ffmpeg exited: %s' % err.strip())


def end_recording():
    p = _recording['proc']
    if not p or p.poll() is not None:
        _recording['proc'] = None
        raise HttpError(400, 'no recording is running')
    try:
        p.stdin.write(b'q')
        p.stdin.close()
        p.wait(timeout=20)
    except Exception:
        p.kill()
        p.wait()
    _recording['proc'] = None
    if not os.path.exists(RECORDING) or not os.path.getsize(RECORDING):
        raise HttpError(500, 'the recording is empty')
    with open(RECORDING, 'rb') as f:
        return f.read()


# ---- HTTP

class Handler(BaseHTTPRequestHandler):
    server_version = 'tfork-guest/1'
    protocol_version = 'HTTP/1.1'
    timeout = 300

    def log_message(self, fmt, *args):
        sys.stderr.write('%s %s\n' % (self.log_date_time_string(), fmt % args))

    # -- replies
    def reply(self, status, body, ctype):
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def json(self, obj, status=200):
        self.reply(status, json.dumps(obj).encode(), 'application/json')

    # -- request bodies
    def body(self):
        if hasattr(self, '_body'):
            return self._body
        n = int(self.headers.get('Content-Length') or 0)
        if n > MAX_BODY:
            raise HttpError(400, 'request body too large')
        self._body = self.rfile.read(n) if n else b''
        return self._body

    def json_body(self, required=()):
        raw = self.body()
        if not raw:
            data = {}
        else:
            try:
                data = json.loads(raw)
            except ValueError as e:
                raise HttpError(400, 'the body is not JSON: %s' % e)
        if not isinstance(data, dict):
            raise HttpError(400, 'the JSON body must be an object')
        missing = [k for k in required if data.get(k) in (None, '')]
        if missing:
            raise HttpError(400, 'missing %s in the JSON body' % ', '.join(missing))
        return data

    def form(self, required=()):
        ctype = self.headers.get('Content-Type', '')
        if ctype.startswith('multipart/form-data'):
            fields, _ = self.multipart()
        elif ctype.startswith('application/json'):
            fields = {k: str(v) for k, v in self.json_body().items()}
        else:
            fields = {k: v[0] for k, v in parse_qs(self.body().decode('utf-8', 'replace'), keep_blank_values=True).items()}
        missing = [k for k in required if not fields.get(k)]
        if missing:
            raise HttpError(400, 'missing form field %s' % ', '.join(missing))
        return fields

    def multipart(self):
        ctype = self.headers.get('Content-Type', '')
        if not ctype.startswith('multipart/form-data'):
            raise HttpError(400, 'expected multipart/form-data')
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b'Content-Type: ' + ctype.encode() + b'\r\n\r\n' + self.body())
        if not msg.is_multipart():
            raise HttpError(400, 'malformed multipart body')
        fields, files = {}, {}
        for part in msg.iter_parts():
            name = part.get_param('name', header='content-disposition')
            if not name:
                continue
            payload = part.get_payload(decode=True) or b''
            if part.get_filename() is not None:
                files[name] = (part.get_filename(), payload)
            else:
                fields[name] = payload.decode('utf-8', 'replace')
        return fields, files

    # -- dispatch
    def do_GET(self):
        self.dispatch('GET')

    def do_POST(self):
        self.dispatch('POST')

    def dispatch(self, method):
        # One handler serves every request of a kept-alive connection: forget the last body.
        self.__dict__.pop('_body', None)
        path = urlparse(self.path).path.rstrip('/') or '/'
        route = ROUTES.get(path)
        try:
            if route is None:
                raise HttpError(404, 'no such endpoint: %s %s' % (method, path))
            methods, fn = route
            if method not in methods:
                raise HttpError(405, '%s takes %s' % (path, ' or '.join(sorted(methods))))
            fn(self)
        except HttpError as e:
            self.json(e.body, e.status)
        except BrokenPipeError:
            pass
        except Exception as e:
            traceback.print_exc()
            try:
                self.json({'status': 'error', 'message': '%s: %s' % (type(e).__name__, e)}, 500)
            except Exception:
                pass
        finally:
            # Drain what a refused request did not read, so the connection stays usable.
            try:
                self.body()
            except Exception:
                self.close_connection = True


# -- endpoints

def h_root(h):
    h.json({'status': 'ok', 'service': 'tfork-guest'})


def h_screenshot(h):
    h.reply(200, screenshot_png(), 'image/png')


def h_execute(h):
    data = h.json_body(required=('command',))
    timeout = data.get('timeout', DEFAULT_TIMEOUT)
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise HttpError(400, 'timeout must be a positive number of seconds')
    h.json(run_command(data['command'], data.get('shell', False), timeout))


def h_run_python(h):
    data = h.json_body(required=('code',))
    if not isinstance(data['code'], str):
        raise HttpError(400, 'code must be a string')
    timeout = data.get('timeout', DEFAULT_TIMEOUT)
    with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as f:
        f.write(data['code'])
    try:
        r = run_command([sys.executable, f.name], False, timeout, cwd=HOME)
    finally:
        os.unlink(f.name)
    ok = r['returncode'] == 0
    h.json({'status': 'success' if ok else 'error', 'message': 'executed' if ok else (r['error'].strip().splitlines() or ['failed'])[-1],
            'output': r['output'], 'error': r['error'], 'return_code': r['returncode']})


def h_run_bash_script(h):
    data = h.json_body(required=('script',))
    timeout = data.get('timeout', 30)
    cwd = expand(data.get('working_dir') or HOME)
    if not os.path.isdir(cwd):
        raise HttpError(400, 'working_dir %s is not a directory' % cwd)
    with tempfile.NamedTemporaryFile('w', suffix='.sh', delete=False) as f:
        f.write(data['script'])
    try:
        p = subprocess.run(['/bin/bash', f.name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout, env=session_env(), cwd=cwd, stdin=subprocess.DEVNULL, start_new_session=True)
        h.json({'status': 'success' if p.returncode == 0 else 'error', 'output': p.stdout, 'error': '', 'returncode': p.returncode})
    except subprocess.TimeoutExpired as e:
        h.json({'status': 'error', 'output': _text(e.stdout), 'error': 'script timed out after %ss' % timeout, 'returncode': -1}, 500)
    finally:
        os.unlink(f.name)


def h_terminal(h):
    import tfork_accessibility

    text = tfork_accessibility.find_terminal_text()
    if text is None:
        raise HttpError(404, 'no terminal with readable text is open (start lxterminal)')
    h.json({'output': text})


def h_accessibility(h):
    import tfork_accessibility

    h.json({'AT': tfork_accessibility.tree_xml()})


def h_file(h):
    path = expand(h.form(required=('file_path',))['file_path'])
    if not os.path.isfile(path):
        raise HttpError(404, 'file not found: %s' % path)
    with open(path, 'rb') as f:
        data = f.read()
    h.send_response(200)
    h.send_header('Content-Type', 'application/octet-stream')
    h.send_header('Content-Disposition', 'attachment; filename="%s"' % os.path.basename(path).replace('"', ''))
    h.send_header('Content-Length', str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def h_list_directory(h):
    path = expand(h.json_body(required=('path',))['path'])
    if not os.path.isdir(path):
        raise HttpError(404, 'directory not found: %s' % path)
    h.json({'directory_tree': directory_tree(path)})


def h_screen_size(h):
    import pyautogui

    w, hh = pyautogui.size()
    h.json({'width': w, 'height': hh})


def h_window_size(h):
    name = h.form(required=('app_class_name',))['app_class_name']
    win = find_window(name, by_class=True)
    if not win:
        raise HttpError(404, 'no window of class %s' % name)
    h.json({'width': win['width'], 'height': win['height']})


def h_desktop_path(h):
    h.json({'desktop_path': os.path.join(HOME, 'Desktop')})


def h_platform(h):
    h.reply(200, platform.system().encode(), 'text/plain; charset=utf-8')


def h_cursor_position(h):
    import pyautogui

    p = pyautogui.position()
    h.json([p.x, p.y])


def h_upload(h):
    fields, files = h.multipart()
    if not fields.get('file_path'):
        raise HttpError(400, 'missing form field file_path')
    if 'file_data' not in files:
        raise HttpError(400, 'missing file part file_data')
    path = expand(fields['file_path'])
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with open(path, 'wb') as f:
        f.write(files['file_data'][1])
    h.json({'status': 'success', 'message': 'saved %s (%d bytes)' % (path, len(files['file_data'][1]))})


def h_launch(h):
    data = h.json_body(required=('command',))
    pid = launch(data['command'], data.get('shell', False))
    h.json({'status': 'success', 'message': 'launched', 'pid': pid})


def h_open_file(h):
    path = expand(h.json_body(required=('path',))['path'])
    if not os.path.exists(path):
        raise HttpError(404, 'file not found: %s' % path)
    pid = _open(path)
    h.json({'status': 'success', 'message': 'opened %s' % path, 'pid': pid})


def _has(cmd):
    return any(os.access(os.path.join(d, cmd), os.X_OK) for d in os.environ.get('PATH', '/usr/bin:/bin').split(':'))


OPENERS = [
    (('.odt', '.doc', '.docx', '.rtf'), ['libreoffice', '--writer']),
    (('.ods', '.xls', '.xlsx', '.csv'), ['libreoffice', '--calc']),
    (('.odp', '.ppt', '.pptx'), ['libreoffice', '--impress']),
    (('.html', '.htm', '.pdf'), ['chromium']),
    (('.mp4', '.mkv', '.avi', '.mp3', '.wav', '.ogg', '.webm'), ['vlc']),
    (('.txt', '.md', '.py', '.json', '.sh', '.log', '.csv'), ['mousepad']),
]


def _open(path):
    ext = os.path.splitext(path)[1].lower()
    if os.path.isdir(path):
        cmd = ['pcmanfm']
    else:
        cmd = next((c for exts, c in OPENERS if ext in exts and _has(c[0])), None)
        if cmd is None:
            cmd = ['xdg-open'] if _has('xdg-open') else None
    if cmd is None or not _has(cmd[0]):
        raise HttpError(400, 'no application to open %s' % path)
    return launch(cmd + [path], False)


def _window_action(h, flag, done):
    data = h.json_body(required=('window_name',))
    # A task's setup launches an app and names its window a moment later: give the window
    # WINDOW_WAIT_S to be mapped (on a busy host the app's start takes longer than the setup's
    # sleep: lxterminal missed a 2 s sleep plus 5 s of waiting once in CI). A window that never
    # comes costs that long before the 404.
    deadline = time.time() + WINDOW_WAIT_S
    while True:
        win = find_window(data['window_name'], bool(data.get('strict')), bool(data.get('by_class')))
        if win or time.time() >= deadline:
            break
        time.sleep(0.2)
    if not win:
        raise HttpError(404, 'no window matches %s' % data['window_name'])
    subprocess.run(['wmctrl', '-i', flag, win['id']], env=session_env(), timeout=10)
    h.json({'status': 'success', 'message': '%s %s' % (done, win['title'])})


def h_activate_window(h):
    _window_action(h, '-a', 'activated')


def h_close_window(h):
    _window_action(h, '-c', 'closed')


def h_start_recording(h):
    start_recording()
    h.json({'status': 'success', 'message': 'recording started'})


def h_end_recording(h):
    data = end_recording()
    h.reply(200, data, 'video/mp4')


ROUTES = {
    '/': ({'GET'}, h_root),
    '/screenshot': ({'GET'}, h_screenshot),
    '/execute': ({'POST'}, h_execute),
    '/setup/execute': ({'POST'}, h_execute),
    '/run_python': ({'POST'}, h_run_python),
    '/run_bash_script': ({'POST'}, h_run_bash_script),
    '/terminal': ({'GET'}, h_terminal),
    '/accessibility': ({'GET'}, h_accessibility),
    '/file': ({'POST'}, h_file),
    '/list_directory': ({'POST'}, h_list_directory),
    '/screen_size': ({'GET', 'POST'}, h_screen_size),
    '/window_size': ({'POST'}, h_window_size),
    '/desktop_path': ({'GET', 'POST'}, h_desktop_path),
    '/platform': ({'GET'}, h_platform),
    '/cursor_position': ({'GET'}, h_cursor_position),
    '/setup/upload': ({'POST'}, h_upload),
    '/setup/launch': ({'POST'}, h_launch),
    '/setup/open_file': ({'POST'}, h_open_file),
    '/setup/activate_window': ({'POST'}, h_activate_window),
    '/setup/close_window': ({'POST'}, h_close_window),
    '/start_recording': ({'POST'}, h_start_recording),
    '/end_recording': ({'POST'}, h_end_recording),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--port', type=int, default=int(os.environ.get('TFORK_GUEST_PORT', '5000')))
    ap.add_argument('--host', default='0.0.0.0')
    a = ap.parse_args()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    sys.stderr.write('tfork-guest: serving on %s:%d\n' % (a.host, a.port))
    srv.serve_forever()


if __name__ == '__main__':
    main()
