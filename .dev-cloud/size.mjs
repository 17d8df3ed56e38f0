import { build } from 'esbuild';
const r = await build({ entryPoints: [process.argv[2]], bundle: true, platform: 'node', format: 'esm', target: 'node22', minify: true, write: false, metafile: true, external: ['@aws-sdk/*'], mainFields: ['module','main'] });
const inputs = r.metafile.outputs[Object.keys(r.metafile.outputs)[0]].inputs;
const byPkg = {};
for (const [f, v] of Object.entries(inputs)) { const m = f.match(/node_modules\/((@[^/]+\/)?[^/]+)/); const k = m ? m[1] : f.split('/').slice(0,2).join('/'); byPkg[k] = (byPkg[k]||0) + v.bytesInOutput; }
console.log(Object.entries(byPkg).sort((a,b)=>b[1]-a[1]).slice(0,15));
