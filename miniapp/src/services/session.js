// Where to go after signing in, and the H5 OAuth round trip with Suishenban: we send the browser to
// Suishenban with a random `state`, it comes back to /m/?code=&state= (no fragment, RFC 6749 §3.1.2).
import { newIdempotencyKey } from '../lib/api'

const STATE_KEY = 'carbon.oauth_state'

export function afterSignIn(answer) {
  const citizen = answer && answer.citizen
  if (citizen && citizen.consents_required) uni.reLaunch({ url: '/pages/consent/index' })
  else uni.reLaunch({ url: '/pages/home/index' })
}

export function newOAuthState() {
  const state = newIdempotencyKey()
  uni.setStorageSync(STATE_KEY, state)
  return state
}

/** {code} or {error} when the page was opened by Suishenban's redirect; null otherwise. */
export function readOAuthReturn() {
  // #ifdef H5
  const params = {}
  window.location.search.replace(/^\?/, '').split('&').filter(Boolean).forEach((pair) => {
    const [k, v = ''] = pair.split('=')
    params[decodeURIComponent(k)] = decodeURIComponent(v.replace(/\+/g, ' '))
  })
  if (!params.code && !params.error) return null
  const expected = uni.getStorageSync(STATE_KEY)
  uni.removeStorageSync(STATE_KEY)
  if (params.error) return { error: 'invalid_login_code' }
  if (!expected || params.state !== expected) return { error: 'invalid_login_code' }
  return { code: params.code }
  // #endif
  // eslint-disable-next-line no-unreachable
  return null
}

/** Removes ?code=&state= from the address bar so a reload does not reuse the single-use code. */
export function clearOAuthReturn() {
  // #ifdef H5
  window.history.replaceState(null, '', window.location.pathname + window.location.hash)
  // #endif
}
