// The API client: citizen tokens kept in storage, a silent refresh when the access token has
// expired (one refresh at a time: refresh tokens rotate and reusing one signs the family out),
// merchant-mode tokens, and an Idempotency-Key on every retried write.
// Transport and storage are injected, so this file is pure and runs under jest; the app passes
// uni.request / uni storage adapters (src/services/platform.js).
import { ApiError, errorFromResponse } from './errors'

export const TOKENS_KEY = 'carbon.tokens'
export const MERCHANT_KEY = 'carbon.merchant'
const EARLY_REFRESH_MS = 30 * 1000
const EXPIRED_CODES = ['token_expired', 'invalid_token']

/** A random idempotency key (UUID v4 shape); Math.random is enough: it only needs to be unique. */
export function newIdempotencyKey(random = Math.random) {
  const hex = '0123456789abcdef'
  let out = ''
  for (let i = 0; i < 36; i += 1) {
    if (i === 8 || i === 13 || i === 18 || i === 23) out += '-'
    else if (i === 14) out += '4'
    else if (i === 19) out += hex[8 + Math.floor(random() * 4)]
    else out += hex[Math.floor(random() * 16)]
  }
  return out
}

/** "?a=1&b=x%20y" from an object, skipping null/undefined/"" (no URLSearchParams in mini-programs). */
export function buildQuery(query) {
  if (!query) return ''
  const parts = Object.keys(query)
    .filter((k) => query[k] !== undefined && query[k] !== null && query[k] !== '')
    .map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(String(query[k]))}`)
  return parts.length ? `?${parts.join('&')}` : ''
}

export function createClient({ baseUrl, transport, storage, now = () => Date.now(), onSignedOut = () => {} }) {
  let refreshing = null

  function tokens() {
    return storage.get(TOKENS_KEY) || null
  }

  function saveTokens(answer) {
    const saved = {
      access_token: answer.access_token,
      refresh_token: answer.refresh_token,
      access_expires_at: now() + answer.expires_in * 1000,
    }
    storage.set(TOKENS_KEY, saved)
    return saved
  }

  function signOutLocally() {
    storage.remove(TOKENS_KEY)
    storage.remove(MERCHANT_KEY)
  }

  async function send(method, path, { query, body, headers = {}, bearer } = {}) {
    const header = { Accept: 'application/json', ...headers }
    if (body !== undefined) header['Content-Type'] = 'application/json'
    if (bearer) header.Authorization = `Bearer ${bearer}`
    const answer = await transport({ method, url: baseUrl + path + buildQuery(query), header, data: body })
    if (answer.status >= 200 && answer.status < 300) return answer.data === '' ? null : answer.data
    throw errorFromResponse(answer.status, answer.data)
  }

  /** Trades the refresh token for new tokens; concurrent callers share one refresh. */
  function refresh() {
    if (!refreshing) {
      const current = tokens()
      refreshing = (async () => {
        if (!current || !current.refresh_token) throw new ApiError({ status: 401, code: 'signed_out' })
        try {
          return saveTokens(await send('POST', '/auth/refresh', { body: { refresh_token: current.refresh_token } }))
        } catch (error) {
          if (error.status === 401 || error.status === 400) {
            signOutLocally()
            onSignedOut()
            throw new ApiError({ status: 401, code: 'signed_out' })
          }
          throw error
        }
      })().finally(() => {
        refreshing = null
      })
    }
    return refreshing
  }

  async function citizenBearer() {
    const current = tokens()
    if (!current) {
      onSignedOut()
      throw new ApiError({ status: 401, code: 'signed_out' })
    }
    if (current.access_expires_at - EARLY_REFRESH_MS <= now()) return (await refresh()).access_token
    return current.access_token
  }

  async function merchantBearer(force = false) {
    const current = storage.get(MERCHANT_KEY)
    if (!force && current && current.expires_at - EARLY_REFRESH_MS > now()) return current.access_token
    const session = await asCitizen('POST', '/merchant/session')
    storage.set(MERCHANT_KEY, { ...session, expires_at: now() + session.expires_in * 1000 })
    return session.access_token
  }

  async function asCitizen(method, path, options = {}) {
    const bearer = await citizenBearer()
    try {
      return await send(method, path, { ...options, bearer })
    } catch (error) {
      if (error.status !== 401 || !EXPIRED_CODES.includes(error.code)) throw error
      const fresh = await refresh()
      return send(method, path, { ...options, bearer: fresh.access_token })
    }
  }

  async function asMerchant(method, path, options = {}) {
    try {
      return await send(method, path, { ...options, bearer: await merchantBearer() })
    } catch (error) {
      if (error.status !== 401 || !EXPIRED_CODES.includes(error.code)) throw error
      return send(method, path, { ...options, bearer: await merchantBearer(true) })
    }
  }

  return {
    /** A public call (no token). */
    open: (method, path, options) => send(method, path, options),
    /** A citizen call; refreshes silently when the access token has expired. */
    call: asCitizen,
    /** A merchant-mode call; starts (or restarts) the merchant session with the citizen's token. */
    merchant: asMerchant,
    /** Exchanges a provider's login code (wechat / alipay / suishenban) for our tokens. */
    async signIn(provider, code) {
      const answer = await send('POST', `/auth/${provider}`, { body: { code } })
      saveTokens(answer)
      storage.remove(MERCHANT_KEY)
      return answer
    },
    async signOut() {
      const current = tokens()
      signOutLocally()
      if (current && current.refresh_token) {
        try {
          await send('POST', '/auth/logout', { body: { refresh_token: current.refresh_token } })
        } catch (error) {
          // Signed out on this device whatever the server said; the token expires by itself.
        }
      }
    },
    isSignedIn: () => Boolean(tokens()),
    leaveMerchantMode: () => storage.remove(MERCHANT_KEY),
    refresh,
  }
}

/**
 * POST a write the citizen may retry: the same body is sent again under the same Idempotency-Key (so a
 * lost answer never creates it twice); a changed body, a success or a refusal (4xx) starts a new key.
 */
export function idempotentPoster(client, newKey = newIdempotencyKey) {
  let pending = null // {body, key}
  return async function post(path, body) {
    if (!pending || JSON.stringify(pending.body) !== JSON.stringify(body)) pending = { body, key: newKey() }
    try {
      const answer = await client.call('POST', path, { body, headers: { 'Idempotency-Key': pending.key } })
      pending = null
      return answer
    } catch (e) {
      if (e.status && e.status < 500) pending = null
      throw e
    }
  }
}
