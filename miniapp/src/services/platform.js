// The only place that touches uni.* for networking and storage: adapters for src/lib/api.js.
import { createClient } from '../lib/api'
import { ApiError } from '../lib/errors'

/* global __API_BASE__ */
export const API_BASE = typeof __API_BASE__ === 'string' ? __API_BASE__ : '/api/v1'

function transport({ method, url, header, data }) {
  return new Promise((resolve, reject) => {
    uni.request({
      url,
      method,
      header,
      data,
      timeout: 15000,
      dataType: 'json',
      success: (res) => resolve({ status: res.statusCode, data: res.data }),
      fail: (err) => reject(new ApiError({ code: /timeout/i.test((err && err.errMsg) || '') ? 'timeout' : 'network_error' })),
    })
  })
}

const storage = {
  get: (key) => uni.getStorageSync(key) || null,
  set: (key, value) => uni.setStorageSync(key, value),
  remove: (key) => uni.removeStorageSync(key),
}

export const api = createClient({
  baseUrl: API_BASE,
  transport,
  storage,
  onSignedOut: () => uni.reLaunch({ url: '/pages/login/index' }),
})
