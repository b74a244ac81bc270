// Byte-compile Python sources with Pyodide's CPython (WebAssembly), warnings as errors.
//   usage: node pyodide_compile.js PYODIDE_DIR SOURCE_DIR PATH...   (PATHs relative to SOURCE_DIR)
// Prints the interpreter's version; exits 1 with compileall's report when a file does not compile.
const path = require('path');
const [dir, src, ...paths] = process.argv.slice(2);
const { loadPyodide } = require(path.resolve(dir, 'pyodide.js'));

(async () => {
  const py = await loadPyodide({ indexURL: path.resolve(dir) + path.sep });
  py.FS.mkdir('/src');
  py.FS.mount(py.FS.filesystems.NODEFS, { root: path.resolve(src) }, '/src');
  py.globals.set('paths', py.toPy(paths));
  const [version, ok, report] = py.runPython(`
import compileall, contextlib, io, os, sys, warnings
sys.pycache_prefix = '/tmp/pyc'   # the byte code stays in Pyodide's memory
warnings.simplefilter('error')    # a SyntaxWarning (invalid escape, ...) fails the file
out = io.StringIO()
ok = True
with contextlib.redirect_stdout(out):
    for p in paths:
        p = os.path.join('/src', p)
        if os.path.isdir(p):
            ok &= bool(compileall.compile_dir(p, quiet=1, force=True, workers=1))
        else:
            ok &= bool(compileall.compile_file(p, quiet=1, force=True))
[sys.version.split()[0], ok, out.getvalue()]
`).toJs();
  console.log(`Python ${version}`);
  if (!ok) {
    console.log(report);
    process.exit(1);
  }
})();
