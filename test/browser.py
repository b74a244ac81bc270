"""
A real headless Chromium for page tests, driven through ChromeDriver's W3C WebDriver API.

Plain HTTP from the standard library: no browser download, no client package. Chromium and
ChromeDriver come from Debian's packages (`apt-get install chromium chromium-driver`, as
.ci/run does). The flags keep it off the network: this machine has none, and Chromium's
background services would otherwise try.
"""

import base64
import json
import os
from pathlib import Path
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM = os.environ.get('STKD_CHROMIUM', '/usr/bin/chromium')
CHROMEDRIVER = os.environ.get('STKD_CHROMEDRIVER', '/usr/bin/chromedriver')
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--window-size=1280,1600']


def missing() -> str:
    """Why no browser test can run here ('' where Chromium and ChromeDriver are installed)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            return (f'{path} is not installed (Debian: apt-get install chromium '
                    f'chromium-driver; .ci/run installs them)')
    return ''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Browser:
    """One Chromium session: ``load(url)``, ``run(js)``, ``run_async(js)``, ``screenshot()``."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix='stkd_chromium_')
        self.port = _free_port()
        self.driver = subprocess.Popen([CHROMEDRIVER, f'--port={self.port}'],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.session = None
        try:
            self._wait_ready()
            self.session = self._call('POST', '/session', {'capabilities': {'alwaysMatch': {
                'browserName': 'chrome',
                'goog:loggingPrefs': {'browser': 'ALL'},
                'goog:chromeOptions': {'binary': CHROMIUM,
                                       'args': FLAGS + [f'--user-data-dir={self.profile}']},
            }}})['sessionId']
            self._call('POST', self._path('/timeouts'), {'script': 30_000, 'pageLoad': 30_000})
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _path(self, tail: str) -> str:
        return f'/session/{self.session}{tail}'

    def _call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f'http://127.0.0.1:{self.port}{path}', data=data,
                                         method=method,
                                         headers={'Content-Type': 'application/json'})
        try:
            with urllib.request.urlopen(request, timeout=90) as response:
                return json.loads(response.read())['value']
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f'WebDriver {method} {path}: {exc.read().decode()[:500]}') \
                from None

    def _wait_ready(self, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._call('GET', '/status').get('ready'):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline or self.driver.poll() is not None:
                raise RuntimeError('chromedriver did not start')
            time.sleep(0.1)

    def load(self, url: str):
        self._call('POST', self._path('/url'), {'url': url})

    def run(self, script: str, *args):
        """Run ``script`` (a function body; ``return`` gives the value) in the page."""
        return self._call('POST', self._path('/execute/sync'),
                          {'script': script, 'args': list(args)})

    def run_async(self, script: str, *args):
        """Run ``script``, whose last argument is a callback that receives the result."""
        return self._call('POST', self._path('/execute/async'),
                          {'script': script, 'args': list(args)})

    def console(self) -> list:
        """Return the browser log since the last call: [{'level', 'message', 'source'}, ...]."""
        return self._call('POST', self._path('/se/log'), {'type': 'browser'})

    def screenshot(self) -> bytes:
        """Return a PNG of the viewport."""
        return base64.b64decode(self._call('GET', self._path('/screenshot')))

    def close(self):
        try:
            if self.session:
                self._call('DELETE', self._path(''))
        finally:
            self.session = None
            self.driver.terminate()
            try:
                self.driver.wait(10)
            except subprocess.TimeoutExpired:
                self.driver.kill()
            shutil.rmtree(self.profile, ignore_errors=True)
