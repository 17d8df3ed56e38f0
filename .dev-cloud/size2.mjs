import { build } from 'esbuild';
const r = await build({ entryPoints: [process.argv[2]], bundle: true, platform: 'node', format: 'esm', target: 'node22', minify: true, write: false, metafile: true, external: ['@aws-sdk/*'], mainFields: ['module','main'] });
const inputs = r.metafile.outputs[Object.keys(r.metafile.outputs)[0]].inputs;
const byDir = {};
for (const [f, v] of Object.entries(inputs)) { if (!f.includes('zod')) continue; const k = f.replace(/\/[^/]+$/, ''); byDir[k] = (byDir[k]||0) + v.bytesInOutput; }
console.log(Object.entries(byDir).sort((a,b)=>b[1]-a[1]).slice(0,10));
