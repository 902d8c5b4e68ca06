"""Loopback doubles of the identity providers (WeChat, Alipay, Suishenban 随申办).

Real HTTP servers that behave like the real services, errors included, for tests
and for `python -m doubles` during local demos. Never used in production.
"""
from doubles.alipay import AlipayDouble
from doubles.server import DoubleServer
from doubles.suishenban import SuishenbanDouble
from doubles.wechat import WeChatDouble

__all__ = ["AlipayDouble", "DoubleServer", "SuishenbanDouble", "WeChatDouble"]
