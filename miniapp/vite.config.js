// Build-time configuration (never secrets; everything here ends up in the bundle):
//   VITE_API_BASE      the API root the app calls. H5 default: "/api/v1" (same origin as /m/);
//                      mini-programs must use the operator's HTTPS domain (default below).
//   MP_WEIXIN_APPID    the operator's WeChat mini-program AppID written into project.config.json.
import { defineConfig } from 'vite'
import uni from '@dcloudio/vite-plugin-uni'

const platform = process.env.UNI_PLATFORM || 'h5'
const apiBase = process.env.VITE_API_BASE || (platform === 'h5' ? '/api/v1' : 'https://carbon.sh.gov.cn/api/v1')
const weixinAppid = process.env.MP_WEIXIN_APPID || 'touristappid'

/** Writes the operator's AppID into the emitted project.config.json (manifest.json keeps a placeholder). */
function weixinAppidPlugin() {
  return {
    name: 'carbon-weixin-appid',
    enforce: 'post',
    generateBundle(_options, bundle) {
      const asset = bundle['project.config.json']
      if (!asset || asset.type !== 'asset') return
      const config = JSON.parse(String(asset.source))
      config.appid = weixinAppid
      asset.source = JSON.stringify(config, null, 2)
    },
  }
}

export default defineConfig({
  plugins: [uni(), weixinAppidPlugin()],
  define: {
    __API_BASE__: JSON.stringify(apiBase),
  },
})
