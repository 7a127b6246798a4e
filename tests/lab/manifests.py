"""Static pod manifests shaped exactly like kubeadm's (v1.31-v1.33).

Lab deviation (all nodes share the host network namespace, so nothing may bind
127.0.0.1): wherever kubeadm writes 127.0.0.1 as a *listen* or *probe* address
(`--listen-client-urls=https://127.0.0.1:2379,...`, `--listen-metrics-urls=http://127.0.0.1:2381`,
probe `host: 127.0.0.1`, the API server's `--etcd-servers=https://127.0.0.1:2379`)
the lab writes the node's own IP instead.  `--listen-client-urls` therefore has a
single URL.  Everything else (flags, their order, annotation, probes, volumes,
image `registry.k8s.io/etcd:<version>-0`) is kubeadm's.
"""

K8S_VERSION = {"3.4": "v1.22.17", "3.5": "v1.33.0"}


def k8s_version(etcd_version):
    return K8S_VERSION.get(".".join(etcd_version.split(".")[:2]), "v1.33.0")


def etcd_image(version):
    """kubeadm's etcd image of an etcd version (what `crictl exec` offers: standins/etcdimages.py)."""
    return "registry.k8s.io/etcd:%s-0" % version


def _probe(kind, host, path, port, scheme, failure, period, initial=None):
    s = "    %s:\n      failureThreshold: %d\n      httpGet:\n        host: %s\n        path: %s\n" \
        "        port: %d\n        scheme: %s\n" % (kind, failure, host, path, port, scheme)
    if initial is not None:
        s += "      initialDelaySeconds: %d\n" % initial
    s += "      periodSeconds: %d\n      timeoutSeconds: 15\n" % period
    return s


def etcd(name, ip, initial_cluster, existing, version, data_host_path="/var/lib/etcd",
         client_port=2379, peer_port=2380, metrics_port=2381):
    client = "https://%s:%d" % (ip, client_port)
    peer = "https://%s:%d" % (ip, peer_port)
    flags = [
        "--advertise-client-urls=" + client,
        "--cert-file=/etc/kubernetes/pki/etcd/server.crt",
        "--client-cert-auth=true",
        "--data-dir=/var/lib/etcd",
        "--experimental-initial-corrupt-check=true",
        "--experimental-watch-progress-notify-interval=5s",
        "--initial-advertise-peer-urls=" + peer,
        "--initial-cluster=" + initial_cluster,
    ]
    if existing:
        flags.append("--initial-cluster-state=existing")
    flags += [
        "--key-file=/etc/kubernetes/pki/etcd/server.key",
        # kubeadm: --listen-client-urls=https://127.0.0.1:2379,https://<ip>:2379 (lab: node IP only)
        "--listen-client-urls=" + client,
        # kubeadm: --listen-metrics-urls=http://127.0.0.1:2381 (lab: node IP)
        "--listen-metrics-urls=http://%s:%d" % (ip, metrics_port),
        "--listen-peer-urls=" + peer,
        "--name=" + name,
        "--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt",
        "--peer-client-cert-auth=true",
        "--peer-key-file=/etc/kubernetes/pki/etcd/peer.key",
        "--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
        "--snapshot-count=10000",
        "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
    ]
    out = ("apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n"
           "    kubeadm.kubernetes.io/etcd.advertise-client-urls: %s\n"
           "  labels:\n    component: etcd\n    tier: control-plane\n  name: etcd\n  namespace: kube-system\n"
           "spec:\n  containers:\n  - command:\n    - etcd\n" % client)
    out += "".join("    - %s\n" % f for f in flags)
    out += "    image: %s\n    imagePullPolicy: IfNotPresent\n" % etcd_image(version)
    out += _probe("livenessProbe", ip, "/livez", metrics_port, "HTTP", 8, 10, 10)
    out += "    name: etcd\n"
    out += _probe("readinessProbe", ip, "/readyz", metrics_port, "HTTP", 3, 1)
    out += "    resources:\n      requests:\n        cpu: 100m\n        memory: 100Mi\n"
    out += _probe("startupProbe", ip, "/readyz", metrics_port, "HTTP", 24, 10, 10)
    out += ("    volumeMounts:\n    - mountPath: /var/lib/etcd\n      name: etcd-data\n"
            "    - mountPath: /etc/kubernetes/pki/etcd\n      name: etcd-certs\n"
            "  hostNetwork: true\n  priority: 2000001000\n  priorityClassName: system-node-critical\n"
            "  securityContext:\n    seccompProfile:\n      type: RuntimeDefault\n"
            "  volumes:\n  - hostPath:\n      path: /etc/kubernetes/pki/etcd\n      type: DirectoryOrCreate\n"
            "    name: etcd-certs\n  - hostPath:\n      path: %s\n      type: DirectoryOrCreate\n"
            "    name: etcd-data\nstatus: {}\n" % data_host_path)
    return out


def _pod(name, flags, image, probes, mounts, volumes, annotations=None, cpu="250m"):
    out = "apiVersion: v1\nkind: Pod\nmetadata:\n"
    if annotations:
        out += "  annotations:\n" + "".join("    %s: %s\n" % kv for kv in annotations)
    out += ("  labels:\n    component: %s\n    tier: control-plane\n  name: %s\n  namespace: kube-system\n"
            "spec:\n  containers:\n  - command:\n    - %s\n" % (name, name, name))
    out += "".join("    - %s\n" % f for f in flags)
    out += "    image: %s\n    imagePullPolicy: IfNotPresent\n" % image
    out += probes[0]
    out += "    name: %s\n" % name
    if len(probes) > 2:
        out += probes[1]
    out += "    resources:\n      requests:\n        cpu: %s\n" % cpu
    out += probes[-1]
    out += "    volumeMounts:\n"
    for mpath, vname, ro in mounts:
        out += "    - mountPath: %s\n      name: %s\n" % (mpath, vname)
        if ro:
            out += "      readOnly: true\n"
    out += ("  hostNetwork: true\n  priority: 2000001000\n  priorityClassName: system-node-critical\n"
            "  securityContext:\n    seccompProfile:\n      type: RuntimeDefault\n  volumes:\n")
    for hpath, htype, vname in volumes:
        out += "  - hostPath:\n      path: %s\n      type: %s\n    name: %s\n" % (hpath, htype, vname)
    out += "status: {}\n"
    return out


def kube_apiserver(ip, etcd_servers, version, port=6443):
    flags = [
        "--advertise-address=" + ip,
        "--allow-privileged=true",
        "--authorization-mode=Node,RBAC",
        "--client-ca-file=/etc/kubernetes/pki/ca.crt",
        "--enable-admission-plugins=NodeRestriction",
        "--enable-bootstrap-token-auth=true",
        "--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt",
        "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt",
        "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key",
        # kubeadm: --etcd-servers=https://127.0.0.1:2379 (lab: the node's own IP)
        "--etcd-servers=" + etcd_servers,
        "--secure-port=%d" % port,
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file=/etc/kubernetes/pki/sa.pub",
        "--service-account-signing-key-file=/etc/kubernetes/pki/sa.key",
        "--service-cluster-ip-range=10.96.0.0/12",
        "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
        "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key",
    ]
    probes = [_probe("livenessProbe", ip, "/livez", port, "HTTPS", 8, 10, 10),
              _probe("readinessProbe", ip, "/readyz", port, "HTTPS", 3, 1),
              _probe("startupProbe", ip, "/livez", port, "HTTPS", 24, 10, 10)]
    return _pod("kube-apiserver", flags, "registry.k8s.io/kube-apiserver:" + k8s_version(version), probes,
                [("/etc/ssl/certs", "ca-certs", True), ("/etc/kubernetes/pki", "k8s-certs", True)],
                [("/etc/ssl/certs", "DirectoryOrCreate", "ca-certs"),
                 ("/etc/kubernetes/pki", "DirectoryOrCreate", "k8s-certs")],
                annotations=[("kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint",
                              "%s:%d" % (ip, port))])


def kube_controller_manager(version):
    flags = [
        "--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
        "--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf",
        "--bind-address=127.0.0.1",
        "--client-ca-file=/etc/kubernetes/pki/ca.crt",
        "--cluster-name=kubernetes",
        "--cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt",
        "--cluster-signing-key-file=/etc/kubernetes/pki/ca.key",
        "--controllers=*,bootstrapsigner,tokencleaner",
        "--kubeconfig=/etc/kubernetes/controller-manager.conf",
        "--leader-elect=true",
        "--root-ca-file=/etc/kubernetes/pki/ca.crt",
        "--service-account-private-key-file=/etc/kubernetes/pki/sa.key",
        "--use-service-account-credentials=true",
    ]
    probes = [_probe("livenessProbe", "127.0.0.1", "/healthz", 10257, "HTTPS", 8, 10, 10),
              _probe("startupProbe", "127.0.0.1", "/healthz", 10257, "HTTPS", 24, 10, 10)]
    return _pod("kube-controller-manager", flags,
                "registry.k8s.io/kube-controller-manager:" + k8s_version(version), probes,
                [("/etc/ssl/certs", "ca-certs", True), ("/etc/kubernetes/pki", "k8s-certs", True),
                 ("/etc/kubernetes/controller-manager.conf", "kubeconfig", True)],
                [("/etc/ssl/certs", "DirectoryOrCreate", "ca-certs"),
                 ("/etc/kubernetes/pki", "DirectoryOrCreate", "k8s-certs"),
                 ("/etc/kubernetes/controller-manager.conf", "FileOrCreate", "kubeconfig")], cpu="200m")


def kube_scheduler(version):
    flags = [
        "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf",
        "--authorization-kubeconfig=/etc/kubernetes/scheduler.conf",
        "--bind-address=127.0.0.1",
        "--kubeconfig=/etc/kubernetes/scheduler.conf",
        "--leader-elect=true",
    ]
    probes = [_probe("livenessProbe", "127.0.0.1", "/livez", 10259, "HTTPS", 8, 10, 10),
              _probe("readinessProbe", "127.0.0.1", "/readyz", 10259, "HTTPS", 3, 1),
              _probe("startupProbe", "127.0.0.1", "/livez", 10259, "HTTPS", 24, 10, 10)]
    return _pod("kube-scheduler", flags, "registry.k8s.io/kube-scheduler:" + k8s_version(version), probes,
                [("/etc/kubernetes/scheduler.conf", "kubeconfig", True)],
                [("/etc/kubernetes/scheduler.conf", "FileOrCreate", "kubeconfig")], cpu="100m")


def kubeconfig(server, ca_b64, user):
    return ("apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: %s\n    server: %s\n"
            "  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: %s\n"
            "  name: %s@kubernetes\ncurrent-context: %s@kubernetes\nkind: Config\npreferences: {}\nusers:\n"
            "- name: %s\n  user: {}\n" % (ca_b64, server, user, user, user, user))


# ---- external etcd run by systemd (the stand-in systemctl reads these) -----------------------------------------
ETCD_DROPIN = "[Service]\n# lab: a drop-in as operators add them (systemctl cat shows it after the unit)\n" \
              "Environment=GOMAXPROCS=2\nLimitNOFILE=65536\n"


def etcd_settings(name, ip, initial_cluster, data_dir, pki, client_port=2379, peer_port=2380,
                  token="etcd-cluster"):
    """[(flag, value)] of a systemd-run member: full initial cluster, state new (kubeadm's external guide,
    kubespray and the Hard Way start every member at once)."""
    client = "https://%s:%d" % (ip, client_port)
    peer = "https://%s:%d" % (ip, peer_port)
    return [("name", name), ("data-dir", data_dir), ("listen-client-urls", client),
            ("advertise-client-urls", client), ("listen-peer-urls", peer),
            ("initial-advertise-peer-urls", peer), ("initial-cluster", initial_cluster),
            ("initial-cluster-token", token), ("initial-cluster-state", "new"),
            ("client-cert-auth", "true"), ("trusted-ca-file", pki["ca"]), ("cert-file", pki["cert"]),
            ("key-file", pki["key"]), ("peer-client-cert-auth", "true"), ("peer-trusted-ca-file", pki["ca"]),
            ("peer-cert-file", pki["peer_cert"]), ("peer-key-file", pki["peer_key"]), ("snapshot-count", "10000")]


def etcd_unit_flags(settings, user="etcd", description="etcd key-value store"):
    """etcd's own unit (contrib/systemd/etcd.service, Kubernetes the Hard Way): flags in ExecStart, User=etcd."""
    lines = " \\\n".join(["ExecStart=/usr/local/bin/etcd"] + ["  --%s=%s" % kv for kv in settings])
    return ("[Unit]\nDescription=%s\nDocumentation=https://github.com/etcd-io/etcd\n"
            "After=network-online.target local-fs.target remote-fs.target time-sync.target\n"
            "Wants=network-online.target local-fs.target remote-fs.target time-sync.target\n\n"
            "[Service]\nUser=%s\nType=notify\n%s\nRestart=on-failure\nRestartSec=5s\nLimitNOFILE=40000\n\n"
            "[Install]\nWantedBy=multi-user.target\n" % (description, user, lines))


def etcd_unit_env(env_file, description="etcd"):
    """kubespray's etcd-host.service.j2 (etcd_deployment_type: host): settings only in the environment file."""
    return ("[Unit]\nDescription=%s\nAfter=network.target\n\n"
            "[Service]\nType=notify\nUser=root\nEnvironmentFile=%s\nExecStart=/usr/local/bin/etcd\n"
            "NotifyAccess=all\nRestart=always\nRestartSec=10s\nLimitNOFILE=40000\n\n"
            "[Install]\nWantedBy=multi-user.target\n" % (description, env_file))


def etcd_env_file(settings, version):
    """kubespray's etcd.env.j2: ETCD_* variables (the lab leaves out its timeouts and ETCD_PROXY/ENABLE_V2)."""
    tls = ("trusted-ca-file", "cert-file", "key-file", "client-cert-auth", "peer-trusted-ca-file",
           "peer-cert-file", "peer-key-file", "peer-client-cert-auth")
    out = "# Environment file for etcd v%s\n" % version
    for k, v in settings:
        if k not in tls:
            out += "ETCD_%s=%s\n" % (k.upper().replace("-", "_"), v)
    out += "\n# TLS settings\n"
    for k, v in settings:
        if k in tls:
            out += "ETCD_%s=%s\n" % (k.upper().replace("-", "_"), v)
    return out
