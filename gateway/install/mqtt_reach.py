"""Connect an MQTT client within a deadline, or say why not (``edge-gateway simulate``).

paho's ``connect_async`` + ``loop_start`` retries a dead broker quietly forever, which left the
simulator hanging without a word. Here the three ways a broker cannot be reached each end in a
:class:`BrokerUnreachable` naming the address and the reason, within one deadline:

- the name does not resolve (DNS; the lookup runs in a helper thread, since ``getaddrinfo`` has no
  timeout of its own and a dead resolver can block for far longer than the deadline);
- TCP fails: refused (nothing listens), timed out (a firewall drops the SYN, a host that is down,
  a listener whose queue is full), or another socket error;
- TCP opens but no MQTT CONNACK comes (a TLS port, an HTTP server, a hung broker), or the CONNACK
  refuses the login (its reason code is given).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from gateway.errors import Unavailable

if TYPE_CHECKING:
    import paho.mqtt.client as paho


class BrokerUnreachable(Unavailable):
    """The broker at ``host:port`` could not be reached; ``reason`` says why (no secrets in it)."""

    code = "broker_unreachable"

    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host, self.port, self.reason = host, port, reason
        super().__init__(f"cannot reach the MQTT broker at {host}:{port}: {reason}")


def connect_within(client: paho.Client, host: str, port: int, *, keepalive: int, timeout_s: float) -> None:
    """``client.connect`` to ``host:port``, start its network loop and wait for a successful
    CONNACK, all within ``timeout_s``. Raises :class:`BrokerUnreachable` (the loop stopped).
    The client's own ``on_connect`` still runs for this and every later connection."""
    deadline = time.monotonic() + timeout_s
    address = _resolve(host, port, timeout_s)
    answered = threading.Event()
    outcome: dict[str, Any] = {}
    own: Any = client.on_connect  # paho types it as a union of its callback versions; VERSION2 here

    def on_connect(c: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        outcome.setdefault("reason", reason)  # the first CONNACK is the answer to this attempt
        answered.set()
        if own is not None:
            own(c, userdata, flags, reason, props)

    client.on_connect = on_connect
    client.connect_timeout = max(0.1, deadline - time.monotonic())
    try:
        client.connect(address, port, keepalive)
    except ConnectionRefusedError:
        raise BrokerUnreachable(host, port, "connection refused: nothing listens on that port") from None
    except TimeoutError:
        raise BrokerUnreachable(
            host, port, f"timed out after {timeout_s:.1f} s: no answer (wrong address, a firewall, or the host is down)"
        ) from None
    except OSError as exc:
        raise BrokerUnreachable(host, port, exc.strerror or type(exc).__name__) from None
    client.loop_start()
    try:
        if not answered.wait(max(0.0, deadline - time.monotonic())):
            raise BrokerUnreachable(
                host,
                port,
                f"TCP connected but no MQTT answer (CONNACK) within {timeout_s:.1f} s: is it an MQTT broker "
                "on a plain (not TLS) port?",
            )
        reason = outcome["reason"]
        if getattr(reason, "is_failure", False):
            raise BrokerUnreachable(host, port, f"the broker refused the connection: {reason}")
    except BrokerUnreachable:
        client.disconnect()
        client.loop_stop()
        raise
    finally:
        client.on_connect = own


def _resolve(host: str, port: int, timeout_s: float) -> str:
    """The address to connect to: ``host`` itself when it is an IP literal, else its first address."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    found: list[str] = []
    failed: list[BaseException] = []

    def lookup() -> None:
        try:
            found.append(str(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0]))
        except (OSError, UnicodeError) as exc:
            failed.append(exc)

    t = threading.Thread(target=lookup, name="broker-dns", daemon=True)  # left behind if the resolver hangs
    t.start()
    t.join(timeout_s)
    if found:
        return found[0]
    if failed:
        exc = failed[0]
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a valid host name"
        raise BrokerUnreachable(host, port, f"DNS: the name does not resolve ({why})")
    raise BrokerUnreachable(host, port, f"DNS: no answer for the name within {timeout_s:.1f} s")
