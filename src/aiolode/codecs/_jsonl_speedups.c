/*
 * C fast paths of aiolode.codecs._jsonl (optional: the pure-Python code is the
 * reference, and the one used when this module is not built).
 *
 * scan(batch, first) -> dict | None
 *     The column scan of _jsonl._scan_slice for its common case: a list of
 *     exact dicts that all hold the same exact-str keys. None when the batch
 *     is anything else (the caller runs the Python code). Otherwise, per key
 *     in the first record's order, exactly what _jsonl._column returns for that
 *     column ([kind, None, lo, hi, non_null, first_index]) when its values are
 *     exact str, int, float, bool or None and none might be refused; None for
 *     any other column (a datetime, a nested value, a subclass, an int beyond
 *     int64, a NaN or infinity, two kinds): the caller runs _column on it,
 *     which decides and names the error.
 *
 *     No user code runs: types are compared by identity (PyXxx_CheckExact),
 *     dict lookups are done only in dicts whose keys are all exact str, and
 *     values are compared only between exact str, int, float or bool objects.
 *     The GIL is held throughout and nothing that could start a garbage
 *     collection is allocated until every object the result holds is owned,
 *     so the batch cannot change underneath.
 *
 *     One difference of letter, not of result: the Python column scan hands a
 *     float column whose sum overflows to the row-wise scan; this code checks
 *     every float is finite and answers, as that row-wise scan would.
 *
 * lines(data, n) -> bytes | None
 *     The JSON Lines of an orjson-serialised array of n objects: the array's
 *     brackets dropped, each "},{" made "}\n{", a final "\n"; None when the
 *     text does not hold exactly n - 1 of them (one is inside a value).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

/* The kinds of _jsonl: _NULL, _BOOL, _INT, _FLOAT, _STR. */
enum { K_NULL = 0, K_BOOL = 1, K_INT = 2, K_FLOAT = 3, K_STR = 4 };

typedef struct {
    int kind;           /* the column's kind so far (K_NULL: no value yet) */
    PyObject *lo, *hi;  /* borrowed from the batch's records */
    Py_ssize_t count;   /* non-null values */
    Py_ssize_t at;      /* index (in the batch) of the first non-null value */
    int mixed;          /* ints and floats: compared as Python objects */
    int deferred;       /* a value this code does not decide: the column is Python's */
    long long ilo, ihi; /* lo and hi of an int column, as C values */
    double flo, fhi;    /* lo and hi of a float column, as C values */
} column;

/* 1: value folded; 0: the Python code must decide; -1: error set. */
static int
fold_value(column *c, PyObject *v, Py_ssize_t i)
{
    int kind;
    long long x = 0;
    double f = 0.0;
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyUnicode_Type) {
        kind = K_STR;
    }
    else if (t == &PyLong_Type) {
        int overflow = 0;
        x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow) {
            return 0; /* beyond int64: refused, by the Python code */
        }
        if (x == -1 && PyErr_Occurred()) {
            return -1;
        }
        kind = K_INT;
    }
    else if (t == &PyFloat_Type) {
        f = PyFloat_AS_DOUBLE(v);
        if (!isfinite(f)) {
            return 0;
        }
        kind = K_FLOAT;
    }
    else if (v == Py_None) {
        return 1;
    }
    else if (t == &PyBool_Type) {
        kind = K_BOOL;
    }
    else {
        return 0; /* nested, datetime, a subclass, anything else */
    }
    if (c->kind == K_NULL) {
        c->kind = kind;
        c->lo = c->hi = v;
        c->count = 1;
        c->at = i;
        c->ilo = c->ihi = x;
        c->flo = c->fhi = f;
        return 1;
    }
    if (c->kind != kind) {
        if ((c->kind == K_INT && kind == K_FLOAT) || (c->kind == K_FLOAT && kind == K_INT)) {
            c->kind = K_FLOAT;
            c->mixed = 1;
        }
        else {
            return 0; /* two kinds: a conflict, named by the Python code */
        }
    }
    c->count++;
    if (v == c->lo || v == c->hi) {
        return 1;
    }
    if (!c->mixed && kind == K_INT) {
        /* min() and max() keep the first of equal values: strict comparisons. */
        if (x < c->ilo) {
            c->ilo = x;
            c->lo = v;
        }
        else if (x > c->ihi) {
            c->ihi = x;
            c->hi = v;
        }
        return 1;
    }
    if (!c->mixed && kind == K_FLOAT) {
        if (f < c->flo) {
            c->flo = f;
            c->lo = v;
        }
        else if (f > c->fhi) {
            c->fhi = f;
            c->hi = v;
        }
        return 1;
    }
    if (kind == K_STR && c->kind == K_STR) {
        /* Both exact str: a code point comparison, as min() and max() do. */
        if (PyUnicode_Compare(v, c->lo) < 0) {
            c->lo = v;
        }
        else if (PyUnicode_Compare(v, c->hi) > 0) {
            c->hi = v;
        }
        return PyErr_Occurred() ? -1 : 1;
    }
    /* Bools, or ints and floats together (compared exactly, as Python does):
     * their own comparisons, no user code. */
    int r = PyObject_RichCompareBool(v, c->lo, Py_LT);
    if (r < 0) {
        return -1;
    }
    if (r) {
        c->lo = v;
        return 1;
    }
    r = PyObject_RichCompareBool(v, c->hi, Py_GT);
    if (r < 0) {
        return -1;
    }
    if (r) {
        c->hi = v;
    }
    return 1;
}

/* Whether every key of an exact dict is an exact str (so lookups in it run no
 * user code). */
static int
str_keys(PyObject *rec)
{
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(rec, &pos, &k, &v)) {
        if (!PyUnicode_CheckExact(k)) {
            return 0;
        }
    }
    return 1;
}

static PyObject *
build_result(PyObject **keys, column *cols, Py_ssize_t width, Py_ssize_t first)
{
    /* Own every object the result will hold before allocating anything: an
     * allocation may run the garbage collector, whose finalizers may run user
     * code that empties the batch these borrowed pointers come from. */
    for (Py_ssize_t j = 0; j < width; j++) {
        Py_INCREF(keys[j]);
        Py_XINCREF(cols[j].lo);
        Py_XINCREF(cols[j].hi);
    }
    PyObject *out = PyDict_New();
    for (Py_ssize_t j = 0; out != NULL && j < width; j++) {
        column *c = &cols[j];
        PyObject *lo = c->kind == K_NULL ? Py_None : c->lo;
        PyObject *hi = c->kind == K_NULL ? Py_None : c->hi;
        PyObject *c_list = c->deferred ? Py_NewRef(Py_None) : Py_BuildValue(
            "[iOOOnn]", c->kind, Py_None, lo, hi, c->count, c->kind == K_NULL ? first : c->at);
        if (c_list == NULL || PyDict_SetItem(out, keys[j], c_list) < 0) {
            Py_CLEAR(out);
        }
        Py_XDECREF(c_list);
    }
    for (Py_ssize_t j = 0; j < width; j++) {
        Py_DECREF(keys[j]);
        Py_XDECREF(cols[j].lo);
        Py_XDECREF(cols[j].hi);
    }
    return out;
}

static PyObject *
scan(PyObject *module, PyObject *args)
{
    PyObject *batch, *first_obj;
    if (!PyArg_ParseTuple(args, "OO:scan", &batch, &first_obj)) {
        return NULL;
    }
    if (!PyList_CheckExact(batch) || PyList_GET_SIZE(batch) == 0 || !PyLong_CheckExact(first_obj)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyList_GET_SIZE(batch);
    Py_ssize_t first = PyLong_AsSsize_t(first_obj);
    if (first == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) {
            return NULL;
        }
        PyErr_Clear();
        Py_RETURN_NONE; /* record indexes beyond C's: the Python code */
    }
    if (first < 0 || first > PY_SSIZE_T_MAX - n) {
        Py_RETURN_NONE;
    }
    PyObject *head = PyList_GET_ITEM(batch, 0);
    if (!PyDict_CheckExact(head)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t width = PyDict_GET_SIZE(head);
    if (width == 0) {
        Py_RETURN_NONE;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *rec = PyList_GET_ITEM(batch, i);
        if (!PyDict_CheckExact(rec) || PyDict_GET_SIZE(rec) != width) {
            Py_RETURN_NONE;
        }
    }
    PyObject **keys = PyMem_New(PyObject *, width);
    column *cols = PyMem_New(column, width);
    PyObject *result = NULL;
    if (keys == NULL || cols == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    {
        Py_ssize_t pos = 0, j = 0;
        PyObject *k, *v;
        while (PyDict_Next(head, &pos, &k, &v)) {
            if (!PyUnicode_CheckExact(k)) {
                result = Py_NewRef(Py_None);
                goto done;
            }
            if (PyUnicode_AsUTF8AndSize(k, NULL) == NULL) {
                /* Not encodable (a lone surrogate): the Python code refuses it. */
                if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
                    goto done;
                }
                PyErr_Clear();
                result = Py_NewRef(Py_None);
                goto done;
            }
            keys[j] = k;
            cols[j].kind = K_NULL;
            cols[j].lo = cols[j].hi = NULL;
            cols[j].count = 0;
            cols[j].at = first;
            cols[j].mixed = 0;
            cols[j].deferred = 0;
            j++;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *rec = PyList_GET_ITEM(batch, i);
        Py_ssize_t pos = 0, j = 0;
        PyObject *k, *v;
        int in_order = 1;
        /* Records written by one producer list their keys in one order, often
         * as the very same (interned) objects: no lookup at all. */
        while (PyDict_Next(rec, &pos, &k, &v)) {
            if (k != keys[j]) {
                in_order = 0;
                break;
            }
            if (!cols[j].deferred) {
                int r = fold_value(&cols[j], v, first + i);
                if (r < 0) {
                    goto done;
                }
                cols[j].deferred = r == 0;
            }
            j++;
        }
        if (in_order) {
            continue;
        }
        /* Another order or other key objects: look each key up, once every
         * key of this record is known to be an exact str. The values already
         * folded were this record's first j columns. */
        if (!str_keys(rec)) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        for (Py_ssize_t m = j; m < width; m++) {
            PyObject *val = PyDict_GetItemWithError(rec, keys[m]);
            if (val == NULL) {
                if (!PyErr_Occurred()) {
                    result = Py_NewRef(Py_None); /* another key set */
                }
                goto done;
            }
            if (!cols[m].deferred) {
                int r = fold_value(&cols[m], val, first + i);
                if (r < 0) {
                    goto done;
                }
                cols[m].deferred = r == 0;
            }
        }
    }
    result = build_result(keys, cols, width, first);
done:
    PyMem_Free(keys);
    PyMem_Free(cols);
    return result;
}

static PyObject *
lines(PyObject *module, PyObject *args)
{
    Py_buffer buf;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "y*n:lines", &buf, &n)) {
        return NULL;
    }
    const char *src = buf.buf;
    Py_ssize_t len = buf.len;
    if (len < 4 || src[0] != '[' || src[1] != '{' || src[len - 2] != '}' || src[len - 1] != ']') {
        PyBuffer_Release(&buf);
        Py_RETURN_NONE;
    }
    /* The array minus its brackets, plus a final newline: len - 1 bytes. */
    PyObject *out = PyBytes_FromStringAndSize(NULL, len - 1);
    if (out == NULL) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    char *dst = PyBytes_AS_STRING(out);
    memcpy(dst, src + 1, (size_t)(len - 2));
    dst[len - 2] = '\n';
    Py_ssize_t seps = 0;
    const char *p = dst + 1, *end = dst + len - 3; /* a separator's ',' lies within */
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        if (comma == NULL) {
            break;
        }
        if (comma[-1] == '}' && comma[1] == '{') {
            *(char *)comma = '\n';
            seps++;
        }
        p = comma + 1;
    }
    PyBuffer_Release(&buf);
    if (seps + 1 != n) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    return out;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "The column scan of a plain batch, or None (see the C source)."},
    {"lines", lines, METH_VARARGS, "JSON Lines from a serialised array of n objects, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "aiolode.codecs._jsonl_speedups",
    "C fast paths of the JSON Lines codec (optional).", -1, methods,
};

PyMODINIT_FUNC
PyInit__jsonl_speedups(void)
{
    return PyModule_Create(&module);
}
