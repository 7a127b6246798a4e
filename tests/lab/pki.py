"""kubeadm-like PKI for the lab.

Uses the `cryptography` package when importable (fast), else the `openssl` CLI.
ECDSA P-256 keys (kubeadm's `encryptionAlgorithm: ECDSA-P256`), PEM, keys 0600.
"""
import datetime
import ipaddress
import os
import subprocess
import tempfile

try:  # pragma: no cover - depends on the host
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    HAVE_CRYPTO = True
except Exception:  # pragma: no cover
    HAVE_CRYPTO = False

DAYS = 3650


def _write(path, data, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class CA:
    """A CA whose cert/key live at <base>.crt/<base>.key."""

    def __init__(self, base):
        self.base = base
        self.crt = base + ".crt"
        self.key = base + ".key"
        self._key = self._cert = None

    # ---- cryptography backend -------------------------------------------
    def create(self, cn):
        if not HAVE_CRYPTO:
            return self._create_openssl(cn)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                             crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        self._key, self._cert = key, cert
        _write(self.key, _key_pem(key), 0o600)
        _write(self.crt, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return self

    def load(self):
        if HAVE_CRYPTO:
            with open(self.key, "rb") as f:
                self._key = serialization.load_pem_private_key(f.read(), None)
            with open(self.crt, "rb") as f:
                self._cert = x509.load_pem_x509_certificate(f.read())
        return self

    def issue(self, base, cn, org=None, dns=(), ips=(), server=False, client=False):
        """Write <base>.crt/<base>.key signed by this CA."""
        if not HAVE_CRYPTO:
            return self._issue_openssl(base, cn, org, dns, ips, server, client)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        attrs = []
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        eku = []
        if server:
            eku.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            eku.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        b = (x509.CertificateBuilder().subject_name(x509.Name(attrs)).issuer_name(self._cert.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=DAYS))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                          crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                            critical=False))
        sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = b.sign(self._key, hashes.SHA256())
        _write(base + ".key", _key_pem(key), 0o600)
        _write(base + ".crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)

    # ---- openssl fallback ------------------------------------------------
    def _create_openssl(self, cn):
        os.makedirs(os.path.dirname(self.key), exist_ok=True)
        _ossl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", self.key])
        os.chmod(self.key, 0o600)
        _ossl(["req", "-x509", "-new", "-key", self.key, "-subj", "/CN=" + cn, "-days", str(DAYS), "-out", self.crt,
               "-addext", "basicConstraints=critical,CA:TRUE",
               "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign,cRLSign"])
        return self

    def _issue_openssl(self, base, cn, org, dns, ips, server, client):
        key, crt = base + ".key", base + ".crt"
        os.makedirs(os.path.dirname(key), exist_ok=True)
        _ossl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key])
        os.chmod(key, 0o600)
        subj = ("/O=%s" % org if org else "") + "/CN=" + cn
        eku = ",".join((["serverAuth"] if server else []) + (["clientAuth"] if client else []))
        ext = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment"]
        if eku:
            ext.append("extendedKeyUsage=" + eku)
        san = ["DNS:" + d for d in dns] + ["IP:" + i for i in ips]
        if san:
            ext.append("subjectAltName=" + ",".join(san))
        with tempfile.NamedTemporaryFile("w", suffix=".cnf", delete=False) as f:
            f.write("[ext]\n" + "\n".join(ext) + "\n")
            cnf = f.name
        try:
            csr = subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", subj], check=True,
                                 stdout=subprocess.PIPE).stdout
            subprocess.run(["openssl", "x509", "-req", "-CA", self.crt, "-CAkey", self.key,
                            "-set_serial", str(int.from_bytes(os.urandom(8), "big") >> 1),
                            "-days", str(DAYS), "-extfile", cnf, "-extensions", "ext", "-out", crt],
                           input=csr, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            os.unlink(cnf)


def _ossl(args):
    subprocess.run(["openssl"] + args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def keypair(base):
    """sa.key / sa.pub like kubeadm's service-account key pair."""
    if HAVE_CRYPTO:
        key = ec.generate_private_key(ec.SECP256R1())
        _write(base + ".key", _key_pem(key), 0o600)
        _write(base + ".pub", key.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
    else:
        _ossl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", base + ".key"])
        os.chmod(base + ".key", 0o600)
        _ossl(["ec", "-in", base + ".key", "-pubout", "-out", base + ".pub"])
