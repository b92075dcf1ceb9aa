"""Staff alarm channels: WeCom/DingTalk group robots, SMS/voice gateway, SMTP e-mail.

See docs/channels.md. Rows are written by :func:`gateway.channels.delivery.queue_channel_messages` in the ticket
loop's transaction and sent by :class:`gateway.channels.delivery.ChannelDispatcher`.
"""
