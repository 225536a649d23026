#!/usr/bin/python3
"""Tests the deployment examples in deploy/ against the real binary: the
Kubernetes Deployment's arguments start `terrarium serve` (every flag exists,
every value parses), its probes' path answers 200, the Service reaches the
container's port, and SIGTERM (what Kubernetes sends) exits 0. The nginx
upstream points at the address the file tells users to listen on.

    test_deploy.py BUILD/terrarium
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TERRARIUM = None


class DeployTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="terrarium-deploy-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_the_kubernetes_deployment_starts_and_its_probes_answer(self):
        with open(os.path.join(ROOT, "deploy", "kubernetes", "terrarium.yaml")) as f:
            documents = {doc["kind"]: doc for doc in yaml.safe_load_all(f)}
        pod = documents["Deployment"]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        port = {p["name"]: p["containerPort"] for p in container["ports"]}
        service_port = documents["Service"]["spec"]["ports"][0]
        self.assertIn(service_port["targetPort"], (port["http"], "http"))
        self.assertEqual(documents["Service"]["spec"]["selector"],
                         documents["Deployment"]["spec"]["template"]["metadata"]["labels"])
        probes = [container[name]["httpGet"] for name in ("readinessProbe", "livenessProbe")]
        for probe in probes:
            self.assertEqual(probe["port"], "http")
        # The container's own arguments, with the paths and the address moved
        # into this test's folder and onto loopback.
        args = list(container["args"])
        self.assertEqual(args[0], "serve")
        config_mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "app")
        with open(os.path.join(self.tmp, "modules.toml"), "w") as f:
            f.write('[[module]]\nroute = "/"\nmodule = "app.py"\n')
        with open(os.path.join(self.tmp, "app.py"), "w") as f:
            f.write('print("Content-Type: text/plain")\nprint()\nprint("hello from the pod")\n')
        for i, arg in enumerate(args):
            if arg.startswith(config_mount + "/"):
                args[i] = os.path.join(self.tmp, os.path.basename(arg))
            if i and args[i - 1] in ("--listen", "-l"):
                self.assertTrue(arg.endswith(":%d" % port["http"]), arg)
                args[i] = "127.0.0.1:0"
            if i and args[i - 1] == "--log-dir":
                args[i] = os.path.join(self.tmp, "logs")
        server = subprocess.Popen([TERRARIUM] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = server.stdout.readline()
            match = re.match(r"Ready: serving on http://(\S+)", line)
            self.assertIsNotNone(match, line + server.stderr.read() if server.poll() is not None else line)
            base = "http://" + match.group(1)
            for probe in probes:
                with urllib.request.urlopen(base + probe["path"], timeout=30) as reply:
                    self.assertEqual(reply.status, 200)
            with urllib.request.urlopen(base + "/", timeout=30) as reply:
                self.assertEqual(reply.read(), b"hello from the pod\n")
            annotations = documents["Deployment"]["spec"]["template"]["metadata"]["annotations"]
            with urllib.request.urlopen(base + annotations["prometheus.io/path"], timeout=30) as reply:
                self.assertIn(b"terrarium_http_requests_total", reply.read())
            server.send_signal(signal.SIGTERM)
            self.assertEqual(server.wait(30), 0)
            # Kubernetes waits terminationGracePeriodSeconds: more than a request may take.
            timeout = args[args.index("--timeout") + 1] if "--timeout" in args else "30s"
            self.assertGreater(pod["terminationGracePeriodSeconds"], int(timeout.rstrip("s")))
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
            server.stdout.close()
            server.stderr.close()

    def test_the_nginx_upstream_is_the_address_it_tells_users_to_listen_on(self):
        with open(os.path.join(ROOT, "deploy", "nginx.conf")) as f:
            text = f.read()
        listen = re.search(r"terrarium serve \S+ --listen (\S+)", text).group(1)
        upstream = re.search(r"upstream terrarium \{[^}]*?server (\S+)", text, re.S).group(1)
        self.assertEqual(listen, upstream)
        self.assertIn("proxy_pass http://terrarium;", text)
        self.assertEqual(text.count("{"), text.count("}"))


if __name__ == "__main__":
    TERRARIUM = sys.argv.pop(1)
    unittest.main()
