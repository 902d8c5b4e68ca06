"""`python -m doubles`: run the three provider doubles on fixed ports for local demos.

Credentials come from the same environment variables the app reads (WECHAT_APPID,
WECHAT_SECRET, ALIPAY_APP_ID, ALIPAY_PRIVATE_KEY, SUISHENBAN_*), so `make run`
and the doubles agree. Without ALIPAY_PRIVATE_KEY a demo app key is created under
instance/doubles/; the double's own "Alipay" key lives there too, and the script
prints how to export both for the app.

Mint a login code for a demo user:
    curl -X POST http://127.0.0.1:5101/__double__/codes -d '{"user": "demo"}'
"""
from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.auth.providers import load_rsa_private_key
from doubles.alipay import AlipayDouble
from doubles.suishenban import SuishenbanDouble
from doubles.wechat import WeChatDouble

DEMO_PHONE = "+8613800138000"


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m doubles", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=_env("DOUBLES_HOST", "127.0.0.1"))
    parser.add_argument("--wechat-port", type=int, default=int(_env("DOUBLE_WECHAT_PORT", "5101")))
    parser.add_argument("--alipay-port", type=int, default=int(_env("DOUBLE_ALIPAY_PORT", "5102")))
    parser.add_argument("--suishenban-port", type=int, default=int(_env("DOUBLE_SUISHENBAN_PORT", "5103")))
    parser.add_argument("--wechat-appid", default=_env("WECHAT_APPID", "wx-dev-appid"))
    parser.add_argument("--wechat-secret", default=_env("WECHAT_SECRET", "wx-dev-secret"))
    parser.add_argument("--alipay-app-id", default=_env("ALIPAY_APP_ID", "2021000000000000"))
    parser.add_argument("--suishenban-client-id", default=_env("SUISHENBAN_CLIENT_ID", "carbon-dev"))
    parser.add_argument(
        "--suishenban-client-secret", default=_env("SUISHENBAN_CLIENT_SECRET", "carbon-dev-secret")
    )
    parser.add_argument(
        "--suishenban-redirect-uri",
        default=_env("SUISHENBAN_REDIRECT_URI", "http://127.0.0.1:5000/m/"),
    )
    parser.add_argument("--instance", default="instance/doubles", help="where a generated demo key goes")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each request (paths only)")
    return parser.parse_args(argv)


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    """A demo RSA key kept under instance/ so it survives restarts (file mode 0600)."""
    if path.exists():
        return load_rsa_private_key(path.read_text())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    return key


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def ensure_demo_keys(instance: Path) -> tuple[str, str]:
    """(our demo Alipay app private key PEM, the double gateway's public key PEM), created once under instance/."""
    app_key = _load_or_create_key(instance / "alipay_app_private_key.pem")
    gateway_key = _load_or_create_key(instance / "alipay_gateway_private_key.pem")
    app_pem = app_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return app_pem, _public_pem(gateway_key)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    instance = Path(args.instance)
    configured = os.environ.get("ALIPAY_PRIVATE_KEY")
    app_key_path = instance / "alipay_app_private_key.pem"
    app_key = load_rsa_private_key(configured) if configured else _load_or_create_key(app_key_path)
    alipay_key = _load_or_create_key(instance / "alipay_gateway_private_key.pem")
    alipay_public_path = instance / "alipay_public_key.pem"
    alipay_public_path.write_text(_public_pem(alipay_key))
    wechat = WeChatDouble(args.wechat_appid, args.wechat_secret, host=args.host, port=args.wechat_port)
    alipay = AlipayDouble(
        args.alipay_app_id,
        _public_pem(app_key),
        alipay_private_key=alipay_key,
        host=args.host,
        port=args.alipay_port,
    )
    suishenban = SuishenbanDouble(
        args.suishenban_client_id,
        args.suishenban_client_secret,
        args.suishenban_redirect_uri,
        host=args.host,
        port=args.suishenban_port,
    )
    suishenban.phones["demo"] = DEMO_PHONE
    doubles = [wechat, alipay, suishenban]
    for double in doubles:
        double.verbose = args.verbose
        double.start()

    print(f"WECHAT_BASE_URL={wechat.url}")
    print(f"ALIPAY_BASE_URL={alipay.url}")
    print(f"SUISHENBAN_BASE_URL={suishenban.url}")
    if not configured:
        print(f"# demo Alipay app key: {app_key_path}; for the app:")
        print(f'#   export ALIPAY_PRIVATE_KEY="$(cat {app_key_path})"')
    print(f'#   export ALIPAY_PUBLIC_KEY="$(cat {alipay_public_path})"  # verifies the double\'s answers')
    print(f"# mint a code: curl -X POST {wechat.url}/__double__/codes -d '{{\"user\": \"demo\"}}'")
    print(f"# Suishenban sign-in page: {suishenban.url}/oauth2/authorize?response_type=code"
          f"&client_id={args.suishenban_client_id}&redirect_uri=...&state=...")
    print("# Ctrl-C to stop", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for double in doubles:
            double.stop()


if __name__ == "__main__":
    main()
