"""Sign-in: identity providers (WeChat, Alipay, Suishenban 随申办), tokens and role checks.

`providers` holds the outbound clients that turn a provider login code into a
`ProviderIdentity`; secrets and provider tokens never leave that module.
"""
