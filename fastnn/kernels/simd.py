"""Short SIMD vectors as Numba values, for the rows of narrow layers.

Numba's loops over a row (``z[j] += a * w[j]``) are vectorised by LLVM, which unrolls
them 32 floats wide and only then falls back to scalar code: a 30-unit row never enters
the vector loop, and each pass re-checks that ``z`` and ``w`` do not overlap and stores
``z`` back to memory, so a sum of many rows waits on store-to-load forwarding at every
term. Here a row segment of ``lanes`` elements (one 512-bit register: 16 float32 or 8
float64) is a value, ``Vec``, that the kernels keep in registers across a whole sum:

    acc = vload(bias, j, m)                   # lanes j .. j+L-1, masked beyond m
    for p in range(...):
        acc = vmadd(acc, x[i], vload(W[i], j, m))   # acc + x_i * W[i, j:j+L]
    vstore(z, j, m, acc)

Every operation is the IEEE operation of the scalar code, lane by lane, in the same
order (a multiply, then an add: no fused multiply-add, no reassociation), so a kernel
written with ``Vec`` gives bitwise the results of its scalar loop. Loads and stores are
masked to the lanes below ``m``; masked-off lanes read as zero and are never written.

Measured on this machine (AMD EPYC, Zen 4; MNIST rows of ~150 non-zero pixels, 784 ->
30, float32): the first layer's forward of a shuffled epoch in batches of 10 took 0.081
s with the scalar ``axpy4`` loops and 0.050 s with each row's sum held in registers
(``dense.forward_sparse``); on 1,000 shuffled rows, 6.5 and 13.0 GMAC/s.

On a machine without 512-bit registers LLVM splits a ``Vec`` into two or four halves;
the results are the same. What costs there is masking (``AVX512``): the loads and
stores of whole registers are plain instructions, a partial register's load reads its
whole register when that stays within a page and zeroes the lanes past ``m``
(``_tail_load``), and only its store is masked. Measured on AMD EPYC Zen 1 (AVX2, no
AVX-512; 2026-12-04), the same forward at batch 32 on 784 -> 100 units: 0.491 s with
every access masked, 0.171 s so (LLVM's loops, scalar source: 0.188-0.205 s).
"""
from llvmlite import binding as llvm, ir
from numba import config, njit, types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

_I32 = ir.IntType(32)
_REGISTER_BYTES = 64


def _target_features():
    """The CPU features Numba compiles for: ``NUMBA_CPU_FEATURES`` if set, none for a
    named ``NUMBA_CPU_NAME`` without them (a portable build such as ``generic``), else
    the host's."""
    if config.CPU_FEATURES is not None:
        return config.CPU_FEATURES
    if config.CPU_NAME is not None and config.CPU_NAME != "host":
        return ""
    return llvm.get_host_cpu_features().flatten()


#: Whether the target has AVX-512 (``+avx512f``): masked loads and stores are then
#: single instructions that cost what unmasked ones do. Without it (AVX2) LLVM uses
#: ``vmaskmovps``/``vmaskmovpd``, which AMD Zen 1 runs slowly: a one-register row sum
#: over a shuffled MNIST epoch (784 -> 16, float32) took 0.095-0.154 s with masked
#: loads and 0.041 s with plain ones (2026-12-04, AMD EPYC 7001, AVX2 only). There the
#: ``Vec`` loads and stores take a plain instruction when all their lanes are inside
#: the row (``_masked_access``) and mask only the row's last, partial register.
AVX512 = "+avx512f" in _target_features().split(",")
#: Whether the target has AVX2 (``store_nonzeros`` packs with ``vpermps`` then).
AVX2 = "+avx2" in _target_features().split(",")


class Vec(types.Type):
    """``lanes`` elements of ``dtype`` (float32 or float64) in one SIMD value."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.lanes = _REGISTER_BYTES // (dtype.bitwidth // 8)
        super().__init__(name=f"Vec{self.lanes}[{dtype}]")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        elt = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(elt, fe_type.lanes))


def _float_array(ty, ndim=1):
    return (isinstance(ty, types.Array) and ty.ndim == ndim and ty.layout == "C"
            and ty.dtype in (types.float32, types.float64))


def _splat(builder, x, vt):
    undef = ir.Constant(vt, ir.Undefined)
    one = builder.insert_element(undef, x, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, undef,
                                  ir.Constant(ir.VectorType(_I32, vt.count), [0] * vt.count))


def _mask(builder, j, m, lanes):
    """Lane ``k`` is on iff ``j + k < m``."""
    rem = builder.sub(m, j)
    cap = ir.Constant(rem.type, lanes)
    rem = builder.select(builder.icmp_signed(">", rem, cap), cap, rem)
    rem = builder.trunc(rem, _I32)
    vt = ir.VectorType(_I32, lanes)
    return builder.icmp_signed("<", ir.Constant(vt, list(range(lanes))),
                               _splat(builder, rem, vt))


def _masked_fn(builder, store, vt, ptr_ty):
    suffix = f"v{vt.count}f{vt.element.intrinsic_name[1:]}"
    mt = ir.VectorType(ir.IntType(1), vt.count)
    if store:
        name = f"llvm.masked.store.{suffix}.p0"
        fnty = ir.FunctionType(ir.VoidType(), [vt, ptr_ty, _I32, mt])
    else:
        name = f"llvm.masked.load.{suffix}.p0"
        fnty = ir.FunctionType(vt, [ptr_ty, _I32, mt, vt])
    return cgutils.get_or_insert_function(builder.module, fnty, name)


def _segment(context, builder, aryty, ary, j, m, lanes, row=None):
    """(pointer to ``ary[j]``, or to ``ary[row, j]`` of a 2-D array, and the mask of the
    lanes below ``m``)."""
    arr = context.make_array(aryty)(context, builder, ary)
    at = j
    if row is not None:
        ncols = cgutils.unpack_tuple(builder, arr.shape, 2)[1]
        at = builder.add(builder.mul(row, ncols), j)
    return builder.gep(arr.data, [at]), _mask(builder, j, m, lanes)


def _intp(context, builder, val, ty):
    return context.cast(builder, val, ty, types.intp)


def _tail_load(builder, ptr, j, m, mask, vt, size, masked):
    """A partial register's load without AVX-512 (see ``AVX512``): when some lane is
    inside (``j < m``) and the register's bytes do not cross a 4 KiB page, a plain load
    (of bytes in the same page as the first lane, so mapped) with the lanes at or past
    ``m`` set to 0; else ``masked()``. Measured, the forward of a shuffled MNIST epoch
    at batch 32 (784 -> 30, float32: two registers, the second partial, on AMD Zen 1):
    0.202 s with the masked load, 0.087 s so (the plain loads of the whole registers
    in both cases; 0.491 s with every load masked)."""
    nbytes = vt.count * size
    addr = builder.ptrtoint(ptr, ir.IntType(64))
    inpage = builder.icmp_unsigned(
        "<=", builder.and_(addr, ir.Constant(addr.type, 4095)),
        ir.Constant(addr.type, 4096 - nbytes))
    ok = builder.and_(builder.icmp_signed("<", j, m), inpage)
    with builder.if_else(ok, likely=True) as (over, masked_bb):
        with over:
            v = builder.load(builder.bitcast(ptr, vt.as_pointer()),
                             align=size)
            a = builder.select(mask, v, ir.Constant(vt, None))
            over_bb = builder.basic_block
        with masked_bb:
            b = masked()
            mbb = builder.basic_block
    phi = builder.phi(vt)
    phi.add_incoming(a, over_bb)
    phi.add_incoming(b, mbb)
    return phi


def _masked_access(store, lanes, dtype, row):
    """Codegen of a masked load (``store`` False) or store of ``lanes`` elements of
    ``dtype`` at ``arr[j]``, or ``arr[i, j]`` with ``row``, from the intrinsic's
    arguments ``(arr, [i,] j, m[, v])``."""
    k = 2 if row else 1
    align = ir.Constant(_I32, dtype.bitwidth // 8)

    def codegen(context, builder, sig, args):
        j = _intp(context, builder, args[k], sig.args[k])
        m = _intp(context, builder, args[k + 1], sig.args[k + 1])
        ptr, mask = _segment(context, builder, sig.args[0], args[0], j, m, lanes,
                             _intp(context, builder, args[1], sig.args[1]) if row else None)
        vt = ir.VectorType(context.get_data_type(dtype), lanes)
        fn = _masked_fn(builder, store, vt, ptr.type)

        def masked():
            if store:
                return builder.call(fn, [args[k + 2], ptr, align, mask])
            return builder.call(fn, [ptr, align, mask, ir.Constant(vt, None)])

        if AVX512:
            v = masked()
            return context.get_dummy_value() if store else v
        # AVX2: a plain access when every lane is inside the row (see AVX512)
        whole = builder.icmp_signed(">=", builder.sub(m, j), ir.Constant(j.type, lanes))
        vptr = builder.bitcast(ptr, vt.as_pointer())
        with builder.if_else(whole, likely=True) as (plain, part):
            with plain:
                if store:
                    builder.store(args[k + 2], vptr, align=dtype.bitwidth // 8)
                else:
                    a = builder.load(vptr, align=dtype.bitwidth // 8)
                plain_bb = builder.basic_block
            with part:
                if store:
                    masked()
                else:
                    b = _tail_load(builder, ptr, j, m, mask, vt, dtype.bitwidth // 8, masked)
                part_bb = builder.basic_block
        if store:
            return context.get_dummy_value()
        phi = builder.phi(vt)
        phi.add_incoming(a, plain_bb)
        phi.add_incoming(b, part_bb)
        return phi

    return codegen


def _ints(*tys):
    return all(isinstance(t, types.Integer) for t in tys)


@intrinsic
def vload(typingctx, arr, j, m):
    """``arr[j : j+lanes]`` as a ``Vec``; lanes at or beyond ``m`` are 0 (not read)."""
    if not (_float_array(arr) and _ints(j, m)):
        return None
    vty = Vec(arr.dtype)
    return vty(arr, j, m), _masked_access(False, vty.lanes, arr.dtype, False)


@intrinsic
def vstore(typingctx, arr, j, m, v):
    """``arr[j : min(j+lanes, m)] = v`` (the lanes below ``m``)."""
    if not (_float_array(arr) and _ints(j, m) and isinstance(v, Vec)
            and v.dtype == arr.dtype):
        return None
    return types.void(arr, j, m, v), _masked_access(True, v.lanes, arr.dtype, False)


@intrinsic
def vloadrow(typingctx, arr, i, j, m):
    """``vload(arr[i], j, m)`` for a C-contiguous 2-D ``arr``, without making the row
    view: a view made in a loop is reference-counted (two atomic calls) unless Numba
    can prove it needless, which in the fused updates' row loops it could not."""
    if not (_float_array(arr, 2) and _ints(i, j, m)):
        return None
    vty = Vec(arr.dtype)
    return vty(arr, i, j, m), _masked_access(False, vty.lanes, arr.dtype, True)


@intrinsic
def vstorerow(typingctx, arr, i, j, m, v):
    """``vstore(arr[i], j, m, v)`` for a C-contiguous 2-D ``arr`` (see ``vloadrow``)."""
    if not (_float_array(arr, 2) and _ints(i, j, m) and isinstance(v, Vec)
            and v.dtype == arr.dtype):
        return None
    return types.void(arr, i, j, m, v), _masked_access(True, v.lanes, arr.dtype, True)


def _row_ptr(context, builder, sig, args, vt):
    """Pointer (as a ``Vec`` pointer) to ``arr[i, j]`` of a C-contiguous 2-D array."""
    arr = context.make_array(sig.args[0])(context, builder, args[0])
    ncols = cgutils.unpack_tuple(builder, arr.shape, 2)[1]
    at = builder.add(builder.mul(_intp(context, builder, args[1], sig.args[1]), ncols),
                     _intp(context, builder, args[2], sig.args[2]))
    return builder.bitcast(builder.gep(arr.data, [at]), vt.as_pointer())


@intrinsic
def vloadpad(typingctx, arr, i, j):
    """``arr[i, j : j+lanes]`` unmasked, for a 2-D workspace whose rows are padded to
    whole registers (the caller keeps ``j + lanes <= arr.shape[1]``).

    A masked store followed by a masked load of the same lanes is slow (on this
    machine's AMD Zen 4 the load is not forwarded from the store): summing MNIST
    pixels' terms into rows of 30 float32 took 1.5-1.7x as long masked as padded."""
    if not (_float_array(arr, 2) and isinstance(i, types.Integer)
            and isinstance(j, types.Integer)):
        return None
    vty = Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        vt = context.get_value_type(vty)
        return builder.load(_row_ptr(context, builder, sig, args, vt),
                            align=vty.dtype.bitwidth // 8)

    return vty(arr, i, j), codegen


@intrinsic
def vstorepad(typingctx, arr, i, j, v):
    """``arr[i, j : j+lanes] = v`` unmasked (see ``vloadpad``)."""
    if not (_float_array(arr, 2) and isinstance(v, Vec) and v.dtype == arr.dtype):
        return None

    def codegen(context, builder, sig, args):
        builder.store(args[3], _row_ptr(context, builder, sig, args, args[3].type),
                      align=v.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.void(arr, i, j, v), codegen


@intrinsic
def vsplat(typingctx, arr, x):
    """A ``Vec`` of ``arr``'s dtype with every lane ``x`` (cast to that dtype)."""
    if not (_float_array(arr) and isinstance(x, (types.Float, types.Integer))):
        return None
    vty = Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        val = context.cast(builder, args[1], sig.args[1], vty.dtype)
        return _splat(builder, val, context.get_value_type(vty))

    return vty(arr, x), codegen


@intrinsic
def lanes(typingctx, arr):
    """The number of lanes of a ``Vec`` of ``arr``'s dtype (a compile-time constant)."""
    if not _float_array(arr):
        return None
    n = Vec(arr.dtype).lanes

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, n)

    return types.intp(arr), codegen


def _binary(op):
    """Lane-wise ``op`` of two ``Vec``, or of a ``Vec`` and a scalar of its dtype
    (either side)."""
    def typer(typingctx, a, b):
        vec = a if isinstance(a, Vec) else b
        if not isinstance(vec, Vec):
            return None
        for t in (a, b):
            if t != vec and t != vec.dtype:
                return None

        def codegen(context, builder, sig, args):
            vt = context.get_value_type(vec)
            x, y = (v if isinstance(t, Vec) else _splat(builder, v, vt)
                    for v, t in zip(args, sig.args))
            return op(builder, x, y)

        return vec(a, b), codegen
    return typer


vadd = intrinsic(_binary(lambda b, x, y: b.fadd(x, y)))
vsub = intrinsic(_binary(lambda b, x, y: b.fsub(x, y)))
vmul = intrinsic(_binary(lambda b, x, y: b.fmul(x, y)))
vadd.__doc__ = "``a + b`` lane by lane (a ``Vec`` and a ``Vec`` or scalar)."
vsub.__doc__ = "``a - b`` lane by lane (a ``Vec`` and a ``Vec`` or scalar)."
vmul.__doc__ = "``a * b`` lane by lane (a ``Vec`` and a ``Vec`` or scalar)."


@intrinsic
def vmaddrow(typingctx, acc, a, arr, i, m):
    """``acc[k] + a * arr[i, k*lanes : (k+1)*lanes]`` for each register ``k`` of the tuple
    ``acc`` (masked at ``m``), as a new tuple: one term of a row sum held in several
    registers, loaded straight from row ``i`` of the C-contiguous 2-D ``arr`` (no view:
    see ``vloadrow``), with each multiply and add rounded as in the scalar code."""
    if not (isinstance(acc, types.UniTuple) and isinstance(acc.dtype, Vec)
            and _float_array(arr, 2) and arr.dtype == acc.dtype.dtype
            and a == arr.dtype and _ints(i, m)):
        return None
    vty = acc.dtype
    load = _masked_access(False, vty.lanes, arr.dtype, True)

    def codegen(context, builder, sig, args):
        vt = context.get_value_type(vty)
        av = _splat(builder, args[1], vt)
        row = _intp(context, builder, args[3], sig.args[3])
        mm = _intp(context, builder, args[4], sig.args[4])
        lsig = vty(sig.args[2], types.intp, types.intp, types.intp)
        out = []
        for k, v in enumerate(cgutils.unpack_tuple(builder, args[0], acc.count)):
            j = ir.Constant(row.type, k * vty.lanes)
            w = load(context, builder, lsig, [args[2], row, j, mm])
            out.append(builder.fadd(v, builder.fmul(w, av)))
        return context.make_tuple(builder, acc, out)

    return acc(acc, a, arr, i, m), codegen


@njit(cache=True, inline="always")
def vmadd(acc, a, w):
    """``acc + a * w``, rounded twice as in the scalar code (not a fused multiply-add)."""
    return vadd(acc, vmul(w, a))


@intrinsic
def prefetch(typingctx, arr, i):
    """Ask the CPU to bring the cache line holding ``arr[i]`` (a C-contiguous 1-D array)
    into its caches; no effect on results, and no fault for any address."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.layout == "C"
            and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [_intp(context, builder, args[1], sig.args[1])])
        ptr = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, _I32, _I32, _I32]),
            "llvm.prefetch.p0")
        # read, keep in all cache levels (locality 3), data cache
        builder.call(fn, [ptr, ir.Constant(_I32, 0), ir.Constant(_I32, 3),
                          ir.Constant(_I32, 1)])
        return context.get_dummy_value()

    return types.void(arr, i), codegen


def _lut(module, name, rows):
    """A module-level constant table of ``<8 x i32>`` rows."""
    vt = ir.VectorType(_I32, 8)
    gv = module.globals.get(name)
    if gv is None:
        gv = ir.GlobalVariable(module, ir.ArrayType(vt, len(rows)), name)
        gv.global_constant = True
        gv.linkage = "internal"
        gv.initializer = ir.Constant(ir.ArrayType(vt, len(rows)),
                                     [ir.Constant(vt, r) for r in rows])
    return gv


def _pack_lut(width):
    """For each mask of ``width`` lanes (8 float32 or 4 float64), the positions of its
    set lanes in order, padded with 0: (the ``vpermps`` indices of the packed lanes,
    as 32-bit halves, and the lane numbers)."""
    perms, lanes_ = [], []
    for mask in range(1 << width):
        on = [k for k in range(width) if mask >> k & 1]
        on += [0] * (width - len(on))
        lanes_.append(on + [0] * (8 - width))
        perms.append(on if width == 8 else [2 * k + h for k in on for h in (0, 1)])
    return perms, lanes_


def _pack_avx2(builder, v, j, size, q, va, ia, itype, vsize, isize):
    """``store_nonzeros``' packing with AVX2 (no AVX-512, no ``vcompressps``): each
    256-bit half of the register (8 float32 or 4 float64) is packed by ``vpermps`` with
    the permutation a table gives for its mask of non-zero lanes, and the column
    numbers from a second table. Measured, filling MNIST's index (50,000 float32
    images, AMD Zen 1, best of 5): 0.152 s with the scalar branch-free loop, 0.146 s
    with ``llvm.experimental.vector.compress`` (expanded lane by lane), 0.070 s so."""
    n = v.type.count
    G = 32 // vsize                       # lanes of a 256-bit half
    module = builder.module
    perms, lanes_ = _pack_lut(G)
    tag = f"fastnn_pack{G}"
    permt, lanet = _lut(module, tag + "_perm", perms), _lut(module, tag + "_lane", lanes_)
    f8 = ir.VectorType(ir.FloatType(), 8)
    i8 = ir.VectorType(_I32, 8)
    permps = cgutils.get_or_insert_function(
        module, ir.FunctionType(f8, [f8, i8]), "llvm.x86.avx2.permps")
    pop = cgutils.get_or_insert_function(
        module, ir.FunctionType(_I32, [_I32]), "llvm.ctpop.i32")
    gt = ir.VectorType(v.type.element, G)
    for g in range(0, n, G):
        sel = ir.Constant(ir.VectorType(_I32, G), list(range(g, g + G)))
        part = builder.shuffle_vector(v, v, sel)
        # the group's non-zero lanes (vmovmskps) that are below x.size
        nz = builder.bitcast(builder.fcmp_unordered("!=", part, ir.Constant(gt, None)),
                             ir.IntType(G))
        rem = builder.sub(size, builder.add(j, ir.Constant(j.type, g)))
        rem = builder.select(builder.icmp_signed(">", rem, ir.Constant(j.type, G)),
                             ir.Constant(j.type, G), rem)
        rem = builder.select(builder.icmp_signed("<", rem, ir.Constant(j.type, 0)),
                             ir.Constant(j.type, 0), rem)
        inside = builder.sub(builder.shl(ir.Constant(_I32, 1), builder.trunc(rem, _I32)),
                             ir.Constant(_I32, 1))
        bits = builder.and_(builder.zext(nz, _I32), inside)
        perm = builder.load(builder.gep(permt, [ir.Constant(_I32, 0), bits]), align=4)
        packed = builder.bitcast(builder.call(permps, [builder.bitcast(part, f8), perm]),
                                 gt)
        builder.store(packed, builder.bitcast(builder.gep(va.data, [q]), gt.as_pointer()),
                      align=vsize)
        cols = builder.load(builder.gep(lanet, [ir.Constant(_I32, 0), bits]), align=4)
        base = builder.trunc(builder.add(j, ir.Constant(j.type, g)), _I32)
        cols = builder.add(cols, _splat(builder, base, i8))
        cols = builder.shuffle_vector(cols, cols,
                                      ir.Constant(ir.VectorType(_I32, G), list(range(G))))
        ct = ir.VectorType(itype, G)
        if itype.width < 32:
            cols = builder.trunc(cols, ct)
        elif itype.width > 32:
            cols = builder.zext(cols, ct)
        builder.store(cols, builder.bitcast(builder.gep(ia.data, [q]), ct.as_pointer()),
                      align=isize)
        q = builder.add(q, builder.zext(builder.call(pop, [bits]), q.type))
    return q


@intrinsic
def store_nonzeros(typingctx, x, j, indices, values, q):
    """Pack the non-zero entries of ``x[j : j+lanes]`` (lanes below ``x.size``) into
    ``values[q:]`` and their positions ``j + k`` into ``indices[q:]``, in order, and
    return ``q`` plus their number: a ``lanes``-wide step of the branch-free loop

        for k in range(j, min(j + lanes, x.size)):
            indices[q] = k; values[q] = x[k]; q += x[k] != 0

    A whole register is stored at each (``values[q : q+lanes]`` and ``indices[q :
    q+lanes]`` must exist); entries past the count are left for later steps to
    overwrite, as the loop leaves them. ``x != 0`` as in Python (NaN counts).

    Without AVX-512 it packs with AVX2 table lookups (``_pack_avx2``). With AVX-512 it
    needs LLVM 19 or newer (``llvm.experimental.vector.compress``, a packing shuffle
    in a register: ``vcompressps`` with 512-bit registers). LLVM's older
    ``llvm.masked.compressstore`` packs straight into memory, which this machine's
    AMD Zen 4 does slowly: filling MNIST's index took 0.097 s so, 0.029 s with the
    scalar loop and 0.010 s with this.
    """
    if not (_float_array(x) and _float_array(values) and values.dtype == x.dtype
            and isinstance(indices, types.Array) and indices.ndim == 1
            and indices.layout == "C" and isinstance(indices.dtype, types.Integer)
            and _ints(j, q)):
        return None
    n = Vec(x.dtype).lanes

    def codegen(context, builder, sig, args):
        xa, ia, va = (context.make_array(sig.args[k])(context, builder, args[k])
                      for k in (0, 2, 3))
        j = _intp(context, builder, args[1], sig.args[1])
        q = _intp(context, builder, args[4], sig.args[4])
        size = cgutils.unpack_tuple(builder, xa.shape, 1)[0]
        vt = ir.VectorType(context.get_data_type(x.dtype), n)
        it = ir.VectorType(context.get_data_type(indices.dtype), n)
        mt = ir.VectorType(ir.IntType(1), n)
        inside = _mask(builder, j, size, n)
        ptr = builder.gep(xa.data, [j])
        load = _masked_fn(builder, False, vt, ptr.type)
        size_ = x.dtype.bitwidth // 8

        def masked():
            return builder.call(load, [ptr, ir.Constant(_I32, size_), inside,
                                       ir.Constant(vt, None)])

        v = masked() if AVX512 else _tail_load(builder, ptr, j, size, inside, vt, size_,
                                                masked)
        keep = builder.and_(builder.fcmp_unordered("!=", v, ir.Constant(vt, None)), inside)
        if not AVX512 and AVX2:
            return _pack_avx2(builder, v, j, size, q, va, ia, it.element,
                              x.dtype.bitwidth // 8, indices.dtype.bitwidth // 8)
        jj = builder.trunc(j, it.element) if it.element.width < 64 else j
        cols = builder.add(_splat(builder, jj, it),
                           ir.Constant(it, list(range(n))))
        for vec, arr, dt in ((v, va, x.dtype), (cols, ia, indices.dtype)):
            suffix = f"v{n}{'f' if isinstance(dt, types.Float) else 'i'}{dt.bitwidth}"
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec.type, [vec.type, mt, vec.type]),
                f"llvm.experimental.vector.compress.{suffix}")
            packed = builder.call(fn, [vec, keep, ir.Constant(vec.type, ir.Undefined)])
            dst = builder.bitcast(builder.gep(arr.data, [q]), vec.type.as_pointer())
            builder.store(packed, dst, align=dt.bitwidth // 8)
        bits = builder.bitcast(keep, ir.IntType(n))
        pop = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(bits.type, [bits.type]), f"llvm.ctpop.i{n}")
        return builder.add(q, builder.zext(builder.call(pop, [bits]), q.type))

    return types.intp(x, j, indices, values, q), codegen


__all__ = ["Vec", "lanes", "prefetch", "vadd", "vload", "vloadpad", "vloadrow", "vmadd",
           "vmaddrow", "vmul", "vsplat", "vstore", "vstorepad", "vstorerow", "vsub",
           "store_nonzeros"]
