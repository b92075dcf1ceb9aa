"""Config of the staff alarm channels (section ``channels``); see docs/channels.md.

WeCom (企业微信) and DingTalk (钉钉) group robots, a WeCom application (企业微信应用消息: a message
to one person), an HTTP SMS/voice gateway and SMTP e-mail (digests, scorecard), with storm
grouping, per-channel rate limits, quiet hours and fallback.
Every key has a default, so a site file without a ``channels`` section stays valid (and sends
nothing: no robot, gateway or SMTP server is configured).

Who gets what: the ticket loop decides the *people* (assignee, escalation rungs, department);
each person is reached through ``staff[].channels`` in order (the first that works; a failing one
falls back to the next). For ``wecom``/``dingtalk`` entries the ``target`` is the *name* of a robot
configured here, and the person's phone is @-mentioned. A person with ``staff[].wecom_userid`` is
first reached by the WeCom application (``wecom_app``), directly, before their other channels.
``policies`` narrow that list per person or team by category and severity and set quiet hours.
Robots with ``broadcast: true`` also receive every matching notification for their group chat.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Literal, overload

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .secrets import EnvSecret, refuse_url_secrets

_Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Category = Literal["parking", "security", "eldercare", "device_health"]
Severity = Literal["critical", "major", "minor", "warning"]
ChannelType = Literal["wecom", "wecom_app", "dingtalk", "sms", "voice", "email"]
GroupField = Literal["compound", "building", "grid", "category", "type", "event", "severity"]

DEFAULT_EVENTS = ["dispatched", "renotified", "escalated", "whistle", "dispatch_failed"]


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("URLs start with http:// or https://")
    return refuse_url_secrets(value.rstrip("/"))


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5, 6, 7], description="ISO weekdays (1 = Monday) the window starts on."
    )
    start: dt.time = Field(description='Start, quoted "HH:MM" (site time zone).')
    end: dt.time = Field(description='End, quoted "HH:MM"; before start = past midnight.')


class Robot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: _Id = Field(description="Robot id; staff[].channels entries of this type name it as their target.")
    categories: list[Category] = Field(default_factory=list, description="Only these categories; empty = all.")
    severities: list[Severity] = Field(default_factory=list, description="Only these severities; empty = all.")
    events: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EVENTS), description="Notification events posted (ticket-loop names)."
    )
    broadcast: bool = Field(
        default=False,
        description="Post every matching notification to the group, not only those addressed to a person "
        "whose channel is this robot.",
    )
    elder_care: bool = Field(
        default=False,
        description="An elder-care group: messages include residents' names and flats (each release logged). "
        "Only for groups of elder-care workers.",
    )
    msgtype: Literal["text", "markdown"] = Field(default="markdown", description="Message type posted.")
    mentioned_mobiles: list[str] = Field(
        default_factory=list, description="Phones always @-mentioned (in addition to the addressed people)."
    )
    rate_per_min: int = Field(
        default=20,
        ge=1,
        le=600,
        description="The service's limit per rate window (both services allow 20 per robot per minute); the "
        "gateway keeps rate.headroom below it.",
    )
    quiet_hours: list[QuietHours] = Field(
        default_factory=list, description="Non-critical messages wait until the window ends (never critical ones)."
    )


class WecomRobot(Robot):
    base_url: str = Field(
        default="https://qyapi.weixin.qq.com", description="WeCom API base (private deployments, tests)."
    )
    key: EnvSecret = Field(description='The robot webhook key (…/webhook/send?key=KEY), ONLY as "${ENV_NAME}".')

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str) -> str:
        return _url(value)


class DingtalkRobot(Robot):
    base_url: str = Field(default="https://oapi.dingtalk.com", description="DingTalk API base (tests, proxies).")
    access_token: EnvSecret = Field(description='The robot access_token, ONLY as "${ENV_NAME}".')
    secret: EnvSecret | None = Field(
        default=None, description='Signing secret of the "加签" security mode (SEC…), ONLY as "${ENV_NAME}".'
    )
    keyword: str | None = Field(
        default=None,
        max_length=20,
        description="For the custom-keyword security mode: a keyword added to every message (e.g. 告警).",
    )

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str) -> str:
        return _url(value)


class WecomApp(BaseModel):
    """A WeCom self-built application (企业微信自建应用): messages to one person by their user id."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        default="https://qyapi.weixin.qq.com", description="WeCom API base (private deployments, tests)."
    )
    corp_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The enterprise's CorpID (管理后台 → 我的企业 → 企业ID, e.g. ww…).",
    )
    agent_id: int = Field(ge=1, description="The application's AgentId (应用管理 → the app's page).")
    secret: EnvSecret = Field(description='The application\'s Secret (corpsecret), ONLY as "${ENV_NAME}".')
    msgtype: Literal["textcard", "text", "markdown"] = Field(
        default="textcard",
        description="textcard: a card whose button opens the incident in the console (text when no console URL "
        "is configured); text or markdown: the message as the robots post it.",
    )
    btntxt: str = Field(
        default="详情", min_length=1, max_length=4, description="The card's button text (WeCom allows 4 characters)."
    )
    rate_per_min: int = Field(
        default=30,
        ge=1,
        le=600,
        description="Messages per person per rate window (WeCom: 30 per member per minute per app; more are "
        "dropped without an error); the gateway keeps rate.headroom below it.",
    )
    rate_per_hour: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Messages per person per 60 rate windows (WeCom: 1000 per member per hour per app).",
    )
    token_refresh_at: float = Field(
        default=0.9,
        ge=0.5,
        le=0.99,
        description="The access token is fetched again after this fraction of its expires_in (7200 s: after 108 "
        "minutes), and at once when WeCom answers 40014/42001.",
    )

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str) -> str:
        return _url(value)


class SmsGateway(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="SMS gateway URL (POST).")
    voice_url: str | None = Field(default=None, description="Voice-call URL (POST); default: the SMS URL.")
    auth_header: EnvSecret | None = Field(
        default=None, description='Value of the auth header (e.g. "Bearer …"), ONLY as "${ENV_NAME}".'
    )
    auth_header_name: str = Field(default="Authorization", description="Name of the auth header.")
    template: str = Field(
        default='{"to": "{phone}", "text": "{message}"}',
        description="JSON request body; {phone} and {message} are replaced (JSON-escaped).",
    )
    voice_template: str = Field(
        default='{"to": "{phone}", "tts": "{message}", "kind": "voice"}',
        description="JSON request body of a voice call; {phone} and {message} are replaced.",
    )
    ok_field: str | None = Field(
        default=None, description="Reply JSON field that must equal ok_value for success (null: any 2xx)."
    )
    ok_value: str | int | None = Field(default=0, description="Value of ok_field meaning success.")
    max_chars: int = Field(default=70, ge=20, le=1000, description="SMS text is cut to this many characters.")
    rate_per_min: int = Field(default=10, ge=1, le=600, description="Messages per phone per rolling minute.")
    sms_critical: bool = Field(
        default=True, description="Critical incidents also go by SMS to the on-duty person's phone (assignee)."
    )
    voice_eldercare_critical: bool = Field(
        default=True,
        description="Call the assignee when a critical elder-care incident is not accepted after its first rung.",
    )

    @field_validator("url", "voice_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else _url(value)

    @field_validator("template", "voice_template")
    @classmethod
    def _tpl(cls, value: str) -> str:
        try:
            json.loads(value.replace("{phone}", "1").replace("{message}", "m"))
        except ValueError as exc:
            raise ValueError(f"the template must be JSON once {{phone}}/{{message}} are filled in: {exc}") from None
        return value


class SmtpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    host: str = Field(description="SMTP server host.")
    port: int = Field(default=587, ge=1, le=65535, description="SMTP port (587 submission with STARTTLS).")
    starttls: bool = Field(default=True, description="Upgrade with STARTTLS (required when authenticating).")
    username: str | None = Field(default=None, description="SMTP user; null = no AUTH.")
    password: EnvSecret | None = Field(default=None, description='SMTP password, ONLY as "${ENV_NAME}".')
    from_addr: str = Field(alias="from", description="Sender address, e.g. 'edge-gw@community.example'.")
    ca_file: str | None = Field(default=None, description="CA bundle (PEM) to verify the server; null = system CAs.")
    timeout_s: float = Field(default=15, gt=0, le=120, description="Connection timeout.")
    digest_recipients: list[str] = Field(default_factory=list, description="Who gets the daily/weekly digests.")
    scorecard_recipients: list[str] = Field(
        default_factory=list, description="Who gets the weekly scorecard (default: the digest recipients)."
    )
    daily_at: dt.time | None = Field(default=dt.time(7, 30), description='Daily digest time "HH:MM"; null = off.')
    weekly_day: int | None = Field(
        default=1, ge=1, le=7, description="ISO weekday of the weekly digest + scorecard (at daily_at); null = off."
    )
    rate_per_min: int = Field(default=30, ge=1, le=600, description="Messages per recipient per rolling minute.")

    @model_validator(mode="after")
    def _auth(self) -> SmtpSettings:
        if self.username and self.password is None:
            raise ValueError('username needs password: "${ENV_NAME}"')
        return self


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    who: _Id = Field(description="Staff id or team id (a person's own policies win over their team's).")
    categories: list[Category] = Field(default_factory=list, description="Applies to these categories; empty = all.")
    severities: list[Severity] = Field(default_factory=list, description="Applies to these severities; empty = all.")
    channels: list[ChannelType] | None = Field(
        default=None,
        description="Channel types used, in this order, from the person's staff[].channels (null = all, "
        "the person's order; [] = none).",
    )
    quiet_hours: list[QuietHours] = Field(
        default_factory=list, description="Non-critical messages wait until the window ends (never critical ones)."
    )


def _default_group_by() -> list[GroupField]:
    return ["compound", "category", "type", "event"]


def _default_immediate() -> list[Severity]:
    return ["critical"]


class GroupingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    group_by: list[GroupField] = Field(
        default_factory=_default_group_by,
        description="Notifications for the same channel target with equal values here become one message.",
    )
    group_wait_s: float = Field(
        default=10, ge=0, le=600, description="A new group waits this long for more members (Alertmanager group_wait)."
    )
    group_interval_s: float = Field(
        default=60, ge=0, le=3600, description="A group that has sent waits this long before its next message."
    )
    immediate_severities: list[Severity] = Field(
        default_factory=_default_immediate,
        description="These severities (and life-safety incidents) are critical alarms: they go before every other "
        "message, without the group wait.",
    )
    critical_interval_s: float = Field(
        default=5,
        ge=0,
        le=600,
        description="The first critical alarm of a kind goes at once; more of that kind for the same target wait at "
        "most this long after its last message and go as one message naming each place.",
    )
    reminder_interval_s: float = Field(
        default=60,
        ge=0,
        le=3600,
        description="Reminders of critical alarms already delivered to a target go as one message, at most this "
        "often, and only in slots first deliveries leave free.",
    )
    max_listed: int = Field(default=10, ge=1, le=100, description="Incidents listed in a grouped message.")
    reserve_for_new: int = Field(
        default=2,
        ge=0,
        le=20,
        description="Per rate window, slots only a new critical alarm (a kind not yet posted to the target in the "
        "window) may use.",
    )
    reserve_for_critical: int = Field(
        default=2,
        ge=0,
        le=20,
        description="Per rate window, further slots that ordinary messages past their share leave for critical "
        "ones (more alarms of a kind, reminders).",
    )
    normal_share: int = Field(
        default=4,
        ge=0,
        le=20,
        description="Per rate window, slots that critical follow-ups (more of a kind, reminders) leave for waiting "
        "ordinary messages: their guaranteed share.",
    )


class RateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_s: float = Field(
        default=60,
        ge=1,
        le=3600,
        description="The window the services count messages in (WeCom and DingTalk robots: 20 per minute); "
        "rate_per_min limits are per this window. Only tests change it.",
    )
    margin: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Fraction added to the window: sends are counted over window × (1 + margin), each timed at "
        "its reply, so clock and network jitter never put one send too many into the service's window.",
    )
    headroom: int = Field(
        default=1, ge=0, le=10, description="Sends per window kept below each documented limit (20 → 19)."
    )


class RetryRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipient: Literal["person", "group", "any"] = Field(
        default="any", description="person: a message addressed to a staff member; group: a robot's broadcast."
    )
    channels: list[ChannelType] = Field(default_factory=list, description="Only these channel kinds; empty = all.")
    severities: list[Severity] = Field(default_factory=list, description="Only these severities; empty = all.")
    attempts: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="A person's message goes on to their next channel once this channel has failed this many "
        "times in a row; null = never: the message waits for the channel (up to give_up_after_s).",
    )
    retry_min_s: float | None = Field(default=None, gt=0, le=600, description="First retry delay; null = the default.")
    retry_max_s: float | None = Field(default=None, gt=0, le=3600, description="Retry delay cap; null = the default.")


def _default_retry() -> list[RetryRule]:
    return [
        # a person's critical alarm: the next channel (SMS, a call) at the first failure
        RetryRule(recipient="person", severities=["critical"], attempts=1, retry_min_s=1, retry_max_s=5),
        # a group broadcast has no next channel: it waits for the robot, however long it is down
        RetryRule(recipient="group", attempts=None),
    ]


class ChannelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Send staff alarms on the channels configured here.")
    language: Literal["zh", "en"] | None = Field(
        default=None, description="Message language; default gateway.language."
    )
    console_base_url: str | None = Field(
        default=None, description="Console URL put in messages, e.g. https://gw.example:8443 (null: no link)."
    )
    wecom: list[WecomRobot] = Field(default_factory=list, description="WeCom group robots.")
    dingtalk: list[DingtalkRobot] = Field(default_factory=list, description="DingTalk custom robots.")
    wecom_app: WecomApp | None = Field(
        default=None,
        description="WeCom application messages to a person (staff[].wecom_userid), tried before their other channels.",
    )
    sms: SmsGateway | None = Field(default=None, description="HTTP SMS / voice-call gateway.")
    smtp: SmtpSettings | None = Field(default=None, description="SMTP for e-mail (digests, scorecard, alarms).")
    policies: list[Policy] = Field(default_factory=list, description="Per person/team: channels by category/severity.")
    grouping: GroupingSettings = Field(default_factory=GroupingSettings, description="Storm grouping.")
    rate: RateSettings = Field(default_factory=RateSettings, description="Rate windows and their safety margin.")
    http_timeout_s: float = Field(default=5, gt=0, le=60, description="Timeout of one HTTP attempt.")
    retry_min_s: float = Field(default=2, gt=0, le=600, description="First retry delay of a failed message.")
    retry_max_s: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="Cap of the retry delay (with jitter): a channel back up is noticed within this long.",
    )
    max_attempts: int = Field(
        default=4,
        ge=1,
        le=100,
        description="Failures in a row of a channel before a person's message goes on to their next channel "
        "(when no retry rule says otherwise).",
    )
    retry: list[RetryRule] = Field(
        default_factory=_default_retry,
        description="Retry rules by recipient, channel kind and severity; the first match wins, unset fields "
        "come from retry_min_s/retry_max_s/max_attempts.",
    )
    give_up_after_s: float = Field(
        default=86400,
        gt=0,
        le=30 * 86400,
        description="A message that could not be delivered (nor passed to a next channel) this long after it was "
        "queued is abandoned: an event on its incident's timeline and on the channel's health incident.",
    )
    held_max: int = Field(
        default=1000,
        ge=10,
        le=100_000,
        description="Messages kept waiting per channel target while it is down; past it the oldest non-critical "
        "ones are abandoned (recorded as above). Critical ones are never abandoned for room.",
    )
    health_after_failures: int = Field(
        default=5, ge=1, le=1000, description="Consecutive failures of a channel that raise a gateway-health incident."
    )

    @field_validator("console_base_url")
    @classmethod
    def _console(cls, value: str | None) -> str | None:
        return None if value is None else _url(value)

    @model_validator(mode="after")
    def _unique(self) -> ChannelSettings:
        for kind, robots in (("wecom", self.wecom), ("dingtalk", self.dingtalk)):
            names = [r.name for r in robots]
            dup = [i for i, n in enumerate(names) if names.index(n) != i]
            if dup:  # positions, not the names: messages never quote a value of the file
                at = ", ".join(f"channels.{kind}[{i}]" for i in dup)
                raise ValueError(f"{kind} robot names must be unique: {at} repeats an earlier robot's name; rename")
        return self

    # Overloads so callers that name the kind get that robot class (wecom and dingtalk differ).
    @overload
    def robot(self, kind: Literal["wecom"], name: str) -> WecomRobot | None: ...
    @overload
    def robot(self, kind: Literal["dingtalk"], name: str) -> DingtalkRobot | None: ...
    @overload
    def robot(self, kind: str, name: str) -> WecomRobot | DingtalkRobot | None: ...
    def robot(self, kind: str, name: str) -> WecomRobot | DingtalkRobot | None:
        robots: list[WecomRobot] | list[DingtalkRobot] = self.wecom if kind == "wecom" else self.dingtalk
        return next((r for r in robots if r.name == name), None)
