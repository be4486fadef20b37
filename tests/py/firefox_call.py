"""A browser-to-browser call between two Firefox instances (Debian's firefox-esr), driven
through Marionette: both sign in, one calls the other, the call is answered, audio flows
both ways (inbound-rtp bytes grow on each side), and a hang-up ends it on both sides.

HUB_URL is the hub's https origin. Prints one JSON line per step and {"ok": true} at the end.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from marionette_driver.marionette import Marionette

HUB = os.environ["HUB_URL"]
WAIT = 20.0
PREFS = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.autoplay.default": 0,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.enabled": False,
    "network.captive-portal-service.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
}


def step(text):
    print(json.dumps({"step": text}), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Firefox:
    def __init__(self, name):
        self.name = name
        self.profile = tempfile.mkdtemp(prefix=f"ff-{name}-")
        port = free_port()
        prefs = dict(PREFS, **{"marionette.port": port})
        with open(os.path.join(self.profile, "user.js"), "w") as f:
            for k, v in prefs.items():
                f.write(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n")
        env = dict(os.environ, MOZ_HEADLESS="1")
        self.log = open(os.path.join(self.profile, "firefox.log"), "w")
        self.proc = subprocess.Popen(
            ["firefox-esr", "--marionette", "--no-remote", "--profile", self.profile],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{name}: Firefox did not open Marionette")
                time.sleep(0.2)
        self.m = Marionette(host="127.0.0.1", port=port)
        self.m.start_session({"acceptInsecureCerts": True})
        self.m.timeout.script = WAIT

    def js(self, script, *args):
        return self.m.execute_script(script, script_args=list(args))

    def wait(self, script, what, *args):
        deadline = time.time() + WAIT
        while time.time() < deadline:
            if self.js(script, *args):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: timed out waiting for {what}")

    def close(self):
        try:
            self.m.delete_session()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def sign_in(ff, name):
    ff.m.navigate(f"{HUB}/auth/demo")
    ff.js("document.getElementById('name').value = arguments[0]; document.querySelector('form').submit();", name)
    ff.wait("return document.getElementById('ws-state') && document.getElementById('ws-state').textContent === 'Ready to call.';", "the phone to connect")


AUDIO_BYTES = """
// Marionette scripts see the page through an Xray wrapper: page globals via wrappedJSObject.
const phone = (window.wrappedJSObject || window).hubPhone;
const pc = phone.call && phone.call.pc;
if (!pc) return -1;
return pc.getStats().then((stats) => {
  let bytes = 0;
  stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'audio') bytes += s.bytesReceived; });
  return bytes;
});
"""


def audio_flows(ff):
    start = ff.m.execute_async_script(
        "const done = arguments[arguments.length - 1]; Promise.resolve((function(){" + AUDIO_BYTES + "})()).then(done);")
    deadline = time.time() + WAIT
    while time.time() < deadline:
        time.sleep(0.25)
        now = ff.m.execute_async_script(
            "const done = arguments[arguments.length - 1]; Promise.resolve((function(){" + AUDIO_BYTES + "})()).then(done);")
        if start >= 0 and now > start + 1000:
            return
    raise RuntimeError(f"{ff.name}: no inbound audio")


def main():
    a = b = None
    try:
        a, b = Firefox("alice"), Firefox("bob")
        step("both sign in")
        sign_in(a, "Alice Firefox")
        sign_in(b, "Bob Firefox")
        step("Bob calls Alice")
        b.js("const i = document.getElementById('search'); i.value = 'alice'; i.dispatchEvent(new Event('input'));")
        b.wait("return document.querySelector('#results li button.call') !== null;", "the search result")
        b.js("document.querySelector('#results li button.call').click();")
        a.wait("return !document.getElementById('incoming').hidden;", "the ring")
        step("Alice answers")
        a.js("document.getElementById('accept').click();")
        for ff in (a, b):
            ff.wait("return document.getElementById('call-state').textContent === 'Connected';", "Connected")
        step("audio flows both ways")
        audio_flows(a)
        audio_flows(b)
        step("Bob hangs up")
        b.js("document.getElementById('hangup').click();")
        a.wait("return document.getElementById('call').hidden && (document.getElementById('notice').textContent || '').includes('Call ended');", "the end")
        print(json.dumps({"ok": True}), flush=True)
    except Exception as e:  # report, with each browser's log
        print(json.dumps({"ok": False, "error": str(e)}), flush=True)
        for ff in (a, b):
            if ff is not None:
                ff.log.flush()
                with open(os.path.join(ff.profile, "firefox.log")) as f:
                    sys.stderr.write(f"--- {ff.name} firefox log ---\n{f.read()[-4000:]}\n")
        sys.exit(1)
    finally:
        for ff in (a, b):
            if ff is not None:
                ff.close()


if __name__ == "__main__":
    main()
