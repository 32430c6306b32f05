//! PyO3 bindings of `bocage-core`. This layer only converts arguments (numpy arrays, bytes-like
//! objects), releases the GIL around the kernels and maps errors to Python exceptions:
//! `Error::Corrupt` -> `FrameError` (a `ValueError`), `Error::Invalid` -> `ValueError`.
use bocage_core::aggregate as agg;
use bocage_core::column::{self, Values, ValuesRef};
use bocage_core::frame::{self, SeriesIn};
use bocage_core::sketch::Sketch;
use bocage_core::Error;
use numpy::{
    PyArray1, PyArrayDescrMethods, PyArrayMethods, PyReadonlyArray1, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::buffer::PyBuffer;
use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

create_exception!(
    bocage_native,
    FrameError,
    PyValueError,
    "A frame or column that can't be decoded: truncated, corrupt, or of an unknown version."
);

fn to_py(e: Error) -> PyErr {
    match e {
        Error::Corrupt(m) => FrameError::new_err(m),
        Error::Invalid(m) => PyValueError::new_err(m),
    }
}

// ------------------------------------------------------------------ argument adapters

/// Bytes handed in from Python: borrowed from an immutable `bytes`, copied from any other
/// buffer (a `bytearray` or `memoryview` could change under us while the GIL is released).
enum BytesArg<'py> {
    Bytes(Bound<'py, PyBytes>),
    Owned(Vec<u8>),
}

impl BytesArg<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            BytesArg::Bytes(b) => b.as_bytes(),
            BytesArg::Owned(v) => v,
        }
    }
}

fn bytes_arg<'py>(obj: &Bound<'py, PyAny>) -> PyResult<BytesArg<'py>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(BytesArg::Bytes(b.clone()));
    }
    let buf = PyBuffer::<u8>::get(obj).map_err(|_| {
        PyTypeError::new_err(format!(
            "expected bytes, bytearray or memoryview of bytes, got {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    Ok(BytesArg::Owned(buf.to_vec(obj.py())?))
}

/// A 1-D numpy array of a given element type: borrowed when it already is one and contiguous,
/// converted otherwise.
enum ArrayArg<'py, T: numpy::Element> {
    Borrowed(PyReadonlyArray1<'py, T>),
    Owned(Vec<T>),
}

impl<T: numpy::Element + Copy> ArrayArg<'_, T> {
    fn as_slice(&self) -> &[T] {
        match self {
            // contiguity checked when constructed
            ArrayArg::Borrowed(a) => a.as_slice().unwrap_or(&[]),
            ArrayArg::Owned(v) => v,
        }
    }
}

fn as_ndarray<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyUntypedArray>> {
    let arr = match obj.cast::<PyUntypedArray>() {
        Ok(a) => a.clone(),
        Err(_) => {
            let np = obj.py().import("numpy")?;
            let a = np.getattr("asarray")?.call1((obj,))?;
            a.cast_into::<PyUntypedArray>()
                .map_err(|_| PyTypeError::new_err(format!("{what}: expected an array")))?
        }
    };
    if arr.ndim() != 1 {
        return Err(PyValueError::new_err(format!(
            "{what}: expected a 1-D array, got {} dimensions",
            arr.ndim()
        )));
    }
    Ok(arr)
}

/// Arrays up to this many elements are copied rather than borrowed: numpy's borrow tracking
/// (a lock and a hash map entry per array) costs more than copying them (measured: ~60 ns a
/// call at 64 values, ~130 ns at 1024; about even at 4096), and columns are mostly short.
const SMALL_COPY: usize = 2048;

fn typed<'py, T: numpy::Element + Copy>(
    arr: &Bound<'py, PyUntypedArray>,
) -> Option<ArrayArg<'py, T>> {
    let a = arr.cast::<PyArray1<T>>().ok()?;
    if a.len() <= SMALL_COPY {
        // (a copy taken while the GIL is held; only non-contiguous arrays fail, below)
        if let Ok(v) = a.to_vec() {
            return Some(ArrayArg::Owned(v));
        }
    }
    let ro = a.try_readonly().ok()?;
    if ro.as_slice().is_ok() {
        Some(ArrayArg::Borrowed(ro))
    } else {
        Some(ArrayArg::Owned(ro.as_array().iter().copied().collect()))
    }
}

fn astype<'py, T: numpy::Element + Copy>(
    arr: &Bound<'py, PyUntypedArray>,
    dtype: &str,
) -> PyResult<ArrayArg<'py, T>> {
    let conv = arr.call_method1("astype", (dtype,))?;
    let conv = conv.cast_into::<PyUntypedArray>().map_err(PyErr::from)?;
    typed::<T>(&conv).ok_or_else(|| PyTypeError::new_err("array conversion failed"))
}

fn kind_name(arr: &Bound<'_, PyUntypedArray>) -> String {
    arr.dtype().str().map(|s| s.to_string()).unwrap_or_default()
}

/// Integers of any width, as int64 (uint64 above 2^63-1 is refused).
fn int_arg<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<ArrayArg<'py, i64>> {
    let arr = as_ndarray(obj, what)?;
    if let Some(a) = typed::<i64>(&arr) {
        return Ok(a);
    }
    let dt = arr.dtype();
    match dt.kind() {
        b'u' if dt.itemsize() == 8 => {
            let a = typed::<u64>(&arr).or_else(|| astype::<u64>(&arr, "uint64").ok());
            let a =
                a.ok_or_else(|| PyTypeError::new_err(format!("{what}: unreadable uint64 array")))?;
            let mut out = Vec::with_capacity(a.as_slice().len());
            for &x in a.as_slice() {
                out.push(i64::try_from(x).map_err(|_| {
                    PyValueError::new_err(format!("{what}: value {x} does not fit in int64"))
                })?);
            }
            Ok(ArrayArg::Owned(out))
        }
        b'i' | b'u' => astype::<i64>(&arr, "int64"),
        _ if arr.len() == 0 => Ok(ArrayArg::Owned(Vec::new())),
        _ => Err(PyTypeError::new_err(format!(
            "{what}: expected an integer array, got dtype {}",
            kind_name(&arr)
        ))),
    }
}

/// Floats of any width, as float64; integers converted if `allow_int`.
fn float_arg<'py>(
    obj: &Bound<'py, PyAny>,
    what: &str,
    allow_int: bool,
) -> PyResult<ArrayArg<'py, f64>> {
    let arr = as_ndarray(obj, what)?;
    if let Some(a) = typed::<f64>(&arr) {
        return Ok(a);
    }
    match arr.dtype().kind() {
        b'f' => astype::<f64>(&arr, "float64"),
        b'i' | b'u' if allow_int => astype::<f64>(&arr, "float64"),
        _ if arr.len() == 0 => Ok(ArrayArg::Owned(Vec::new())),
        _ => Err(PyTypeError::new_err(format!(
            "{what}: expected a float array, got dtype {}",
            kind_name(&arr)
        ))),
    }
}

enum ValuesArg<'py> {
    F64(ArrayArg<'py, f64>),
    I64(ArrayArg<'py, i64>),
}

impl ValuesArg<'_> {
    fn as_ref(&self) -> ValuesRef<'_> {
        match self {
            ValuesArg::F64(a) => ValuesRef::F64(a.as_slice()),
            ValuesArg::I64(a) => ValuesRef::I64(a.as_slice()),
        }
    }
}

/// Values keep their kind: floating dtypes become float64, integer dtypes int64.
fn values_arg<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<ValuesArg<'py>> {
    let arr = as_ndarray(obj, what)?;
    // (float64 first, the usual case: taken without reading the dtype's kind or converting
    // the array twice)
    if let Some(a) = typed::<f64>(&arr) {
        return Ok(ValuesArg::F64(a));
    }
    match arr.dtype().kind() {
        b'f' => Ok(ValuesArg::F64(float_arg(arr.as_any(), what, false)?)),
        b'i' | b'u' => Ok(ValuesArg::I64(int_arg(arr.as_any(), what)?)),
        _ => Err(PyTypeError::new_err(format!(
            "{what}: expected a float64 or int64 array, got dtype {}",
            kind_name(&arr)
        ))),
    }
}

fn quality_arg<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Option<ArrayArg<'py, u8>>> {
    if obj.is_none() {
        return Ok(None);
    }
    let arr = as_ndarray(obj, what)?;
    if let Some(a) = typed::<u8>(&arr) {
        return Ok(Some(a));
    }
    match arr.dtype().kind() {
        b'i' | b'u' | b'b' => {
            let wide = int_arg(arr.as_any(), what).or_else(|_| astype::<i64>(&arr, "int64"))?;
            let mut out = Vec::with_capacity(wide.as_slice().len());
            for &x in wide.as_slice() {
                out.push(u8::try_from(x).map_err(|_| {
                    PyValueError::new_err(format!("{what}: quality flag {x} is outside 0..=255"))
                })?);
            }
            Ok(Some(ArrayArg::Owned(out)))
        }
        _ if arr.len() == 0 => Ok(Some(ArrayArg::Owned(Vec::new()))),
        _ => Err(PyTypeError::new_err(format!(
            "{what}: expected a uint8 array, got dtype {}",
            kind_name(&arr)
        ))),
    }
}

fn values_to_py(py: Python<'_>, v: Values) -> Py<PyAny> {
    match v {
        Values::F64(x) => PyArray1::from_vec(py, x).into_any().unbind(),
        Values::I64(x) => PyArray1::from_vec(py, x).into_any().unbind(),
    }
}

// ------------------------------------------------------------------ frame classes

/// One (sensor, metric) series of a frame.
#[pyclass(module = "bocage_native", frozen)]
struct Series {
    #[pyo3(get)]
    sensor: String,
    #[pyo3(get)]
    metric: String,
    #[pyo3(get)]
    timestamps: Py<PyArray1<i64>>,
    #[pyo3(get)]
    values: Py<PyAny>,
    #[pyo3(get)]
    quality: Py<PyArray1<u8>>,
}

#[pymethods]
impl Series {
    #[new]
    #[pyo3(signature = (sensor, metric, timestamps, values, quality = None))]
    fn new(
        py: Python<'_>,
        sensor: String,
        metric: String,
        timestamps: &Bound<'_, PyAny>,
        values: &Bound<'_, PyAny>,
        quality: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let ts = int_arg(timestamps, "timestamps")?.as_slice().to_vec();
        let vals = match values_arg(values, "values")? {
            ValuesArg::F64(a) => Values::F64(a.as_slice().to_vec()),
            ValuesArg::I64(a) => Values::I64(a.as_slice().to_vec()),
        };
        let q = match quality {
            Some(q) => quality_arg(q, "quality")?.map(|a| a.as_slice().to_vec()),
            None => None,
        }
        .unwrap_or_else(|| vec![0; ts.len()]);
        if vals.len() != ts.len() || q.len() != ts.len() {
            return Err(PyValueError::new_err(format!(
                "series {sensor}/{metric}: {} timestamps, {} values, {} quality flags",
                ts.len(),
                vals.len(),
                q.len()
            )));
        }
        Ok(Series {
            sensor,
            metric,
            timestamps: PyArray1::from_vec(py, ts).unbind(),
            values: values_to_py(py, vals),
            quality: PyArray1::from_vec(py, q).unbind(),
        })
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.timestamps.bind(py).len()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let dtype = self
            .values
            .bind(py)
            .getattr("dtype")
            .and_then(|d| d.str().map(|s| s.to_string()))
            .unwrap_or_default();
        format!(
            "Series(sensor={:?}, metric={:?}, len={}, values={})",
            self.sensor,
            self.metric,
            self.timestamps.bind(py).len(),
            dtype
        )
    }
}

/// The header of a frame, as read by `peek_header`.
#[pyclass(module = "bocage_native", frozen, subclass)]
struct FrameHeader {
    #[pyo3(get)]
    version: u8,
    #[pyo3(get)]
    territory: String,
    #[pyo3(get)]
    gateway: String,
    #[pyo3(get)]
    sequence: u64,
    #[pyo3(get)]
    created_ms: i64,
    #[pyo3(get)]
    series_count: u32,
    #[pyo3(get)]
    reading_count: u32,
}

impl FrameHeader {
    fn from_core(h: &frame::Header) -> Self {
        FrameHeader {
            version: h.version,
            territory: h.territory.clone(),
            gateway: h.gateway.clone(),
            sequence: h.sequence,
            created_ms: h.created_ms,
            series_count: h.series_count,
            reading_count: h.reading_count,
        }
    }
}

#[pymethods]
impl FrameHeader {
    /// `territory:gateway:sequence`, the frame's stable identity (Nats-Msg-Id, dedup token).
    #[getter]
    fn frame_id(&self) -> String {
        format!("{}:{}:{}", self.territory, self.gateway, self.sequence)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let h = slf.get();
        let cls = slf.get_type().name()?;
        Ok(format!(
            "{cls}(version={}, territory={:?}, gateway={:?}, sequence={}, created_ms={}, series_count={}, reading_count={})",
            h.version, h.territory, h.gateway, h.sequence, h.created_ms, h.series_count, h.reading_count
        ))
    }
}

/// A decoded frame: the header's attributes plus its series.
#[pyclass(module = "bocage_native", frozen, extends = FrameHeader)]
struct Frame {
    series: Vec<Py<Series>>,
}

#[pymethods]
impl Frame {
    #[getter]
    fn series<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.series.iter().map(|s| s.clone_ref(py)))
    }

    /// Flattened columns for a columnar insert, one row per reading in frame order:
    /// `series_index` (uint32), `timestamps` (int64), `values` (float64) and `quality` (uint8).
    fn columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let total: usize = self
            .series
            .iter()
            .map(|s| s.get().timestamps.bind(py).len())
            .sum();
        let mut idx = Vec::with_capacity(total);
        let mut ts = Vec::with_capacity(total);
        let mut vals = Vec::with_capacity(total);
        let mut q = Vec::with_capacity(total);
        for (i, s) in self.series.iter().enumerate() {
            let s = s.get();
            let t = s.timestamps.bind(py).readonly();
            let t = t.as_slice()?;
            idx.extend(std::iter::repeat_n(i as u32, t.len()));
            ts.extend_from_slice(t);
            let v = s.values.bind(py);
            if let Ok(a) = v.cast::<PyArray1<f64>>() {
                vals.extend_from_slice(a.readonly().as_slice()?);
            } else if let Ok(a) = v.cast::<PyArray1<i64>>() {
                vals.extend(a.readonly().as_slice()?.iter().map(|&x| x as f64));
            } else {
                return Err(PyTypeError::new_err(
                    "series values are not float64 or int64",
                ));
            }
            q.extend_from_slice(s.quality.bind(py).readonly().as_slice()?);
        }
        let d = PyDict::new(py);
        d.set_item("series_index", PyArray1::from_vec(py, idx))?;
        d.set_item("timestamps", PyArray1::from_vec(py, ts))?;
        d.set_item("values", PyArray1::from_vec(py, vals))?;
        d.set_item("quality", PyArray1::from_vec(py, q))?;
        Ok(d)
    }
}

// ------------------------------------------------------------------ frame functions

struct SeriesArgs<'py> {
    sensor: String,
    metric: String,
    ts: ArrayArg<'py, i64>,
    values: ValuesArg<'py>,
    quality: Option<ArrayArg<'py, u8>>,
}

fn series_args<'py>(item: &Bound<'py, PyAny>, i: usize) -> PyResult<SeriesArgs<'py>> {
    let py = item.py();
    if let Ok(s) = item.cast::<Series>() {
        let s = s.get();
        return Ok(SeriesArgs {
            sensor: s.sensor.clone(),
            metric: s.metric.clone(),
            ts: int_arg(s.timestamps.bind(py).as_any(), "timestamps")?,
            values: values_arg(s.values.bind(py), "values")?,
            quality: quality_arg(s.quality.bind(py).as_any(), "quality")?,
        });
    }
    let t = item.cast::<PyTuple>().map_err(|_| {
        PyTypeError::new_err(format!(
            "series {i}: expected a tuple (sensor, metric, timestamps, values, quality) or a Series"
        ))
    })?;
    if t.len() != 5 && t.len() != 4 {
        return Err(PyValueError::new_err(format!(
            "series {i}: expected 5 items (sensor, metric, timestamps, values, quality), got {}",
            t.len()
        )));
    }
    let ctx = |e: PyErr| {
        let msg = e.value(py).to_string();
        if e.is_instance_of::<PyTypeError>(py) {
            PyTypeError::new_err(format!("series {i}: {msg}"))
        } else {
            PyValueError::new_err(format!("series {i}: {msg}"))
        }
    };
    let quality = if t.len() == 5 {
        quality_arg(&t.get_item(4)?, "quality").map_err(ctx)?
    } else {
        None
    };
    Ok(SeriesArgs {
        sensor: t.get_item(0)?.extract::<String>().map_err(ctx)?,
        metric: t.get_item(1)?.extract::<String>().map_err(ctx)?,
        ts: int_arg(&t.get_item(2)?, "timestamps").map_err(ctx)?,
        values: values_arg(&t.get_item(3)?, "values").map_err(ctx)?,
        quality,
    })
}

/// Encodes one frame. Each series is `(sensor, metric, timestamps, values, quality)`
/// (quality may be None: all good) or a `Series`.
#[pyfunction]
fn encode_frame<'py>(
    py: Python<'py>,
    territory: &str,
    gateway: &str,
    sequence: i128,
    created_ms: i128,
    series: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let sequence = u64::try_from(sequence)
        .map_err(|_| PyValueError::new_err(format!("sequence {sequence} is outside 0..2**64")))?;
    let created_ms = i64::try_from(created_ms)
        .map_err(|_| PyValueError::new_err(format!("created_ms {created_ms} is outside int64")))?;
    let mut args = Vec::new();
    for (i, item) in series.try_iter()?.enumerate() {
        args.push(series_args(&item?, i)?);
    }
    let ins: Vec<SeriesIn<'_>> = args
        .iter()
        .map(|a| SeriesIn {
            sensor: &a.sensor,
            metric: &a.metric,
            timestamps: a.ts.as_slice(),
            values: a.values.as_ref(),
            quality: a.quality.as_ref().map(|q| q.as_slice()),
        })
        .collect();
    let out = py
        .detach(|| frame::encode_frame(territory, gateway, sequence, created_ms, &ins))
        .map_err(to_py)?;
    Ok(PyBytes::new(py, &out))
}

/// Reads and checks a frame's header (magic, version, lengths, header checksum) only.
#[pyfunction]
fn peek_header(data: &Bound<'_, PyAny>) -> PyResult<FrameHeader> {
    let b = bytes_arg(data)?;
    let h = frame::peek_header(b.as_slice()).map_err(to_py)?;
    Ok(FrameHeader::from_core(&h))
}

/// Decodes and checks a whole frame; raises FrameError on any problem.
#[pyfunction]
fn decode_frame<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Frame>> {
    let b = bytes_arg(data)?;
    let slice = b.as_slice();
    let f = py.detach(|| frame::decode_frame(slice)).map_err(to_py)?;
    let header = FrameHeader::from_core(&f.header);
    let mut series = Vec::with_capacity(f.series.len());
    for s in f.series {
        series.push(Py::new(
            py,
            Series {
                sensor: s.sensor,
                metric: s.metric,
                timestamps: PyArray1::from_vec(py, s.timestamps).unbind(),
                values: values_to_py(py, s.values),
                quality: PyArray1::from_vec(py, s.quality).unbind(),
            },
        )?);
    }
    Bound::new(
        py,
        PyClassInitializer::from(header).add_subclass(Frame { series }),
    )
}

// ------------------------------------------------------------------ column codecs

#[pyfunction]
fn encode_timestamps<'py>(
    py: Python<'py>,
    ts: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let a = int_arg(ts, "timestamps")?;
    let s = a.as_slice();
    let out = py.detach(|| column::encode_timestamps(s));
    Ok(PyBytes::new(py, &out))
}

#[pyfunction]
fn decode_timestamps<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let b = bytes_arg(data)?;
    let s = b.as_slice();
    let v = py.detach(|| column::decode_timestamps(s)).map_err(to_py)?;
    Ok(PyArray1::from_vec(py, v))
}

#[pyfunction]
fn encode_values<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let a = values_arg(values, "values")?;
    let r = a.as_ref();
    let out = py.detach(|| column::encode_values(r));
    Ok(PyBytes::new(py, &out))
}

#[pyfunction]
fn decode_values<'py>(py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Py<PyAny>> {
    let b = bytes_arg(data)?;
    let s = b.as_slice();
    let v = py.detach(|| column::decode_values(s)).map_err(to_py)?;
    Ok(values_to_py(py, v))
}

// ------------------------------------------------------------------ aggregation

/// Owner of an output column's memory that numpy arrays view (their `base`).
#[pyclass(frozen, module = "bocage_native")]
struct ColumnMemory {
    _buf: Box<dyn std::any::Any + Send + Sync>,
}

/// An output column as a numpy array, without a copy.
fn column_to_py<'py, T: numpy::Element + Copy + Send + Sync + 'static>(
    py: Python<'py>,
    c: agg::Column<T>,
) -> PyResult<Bound<'py, PyArray1<T>>> {
    let (buf, off, len) = c.into_parts();
    if off == 0 {
        let mut v = buf;
        // SAFETY: rows `0..len` of the allocation are written
        unsafe { v.set_len(len) };
        return Ok(PyArray1::from_vec(py, v));
    }
    let ptr = buf.as_ptr().wrapping_add(off);
    // moving the Vec into the owner leaves its heap memory where it is
    let owner = Bound::new(
        py,
        ColumnMemory {
            _buf: Box::new(buf),
        },
    )?;
    // SAFETY: rows `off..off + len` of the allocation are written and stay valid as long as
    // `owner`, which the array keeps as its base, is alive; nothing reallocates it.
    unsafe {
        let view = numpy::ndarray::ArrayView1::from_shape_ptr(len, ptr);
        Ok(PyArray1::borrow_from_array(&view, owner.into_any()))
    }
}

/// Grouped tumbling-window aggregation; see `bocage_core::aggregate` for the definitions.
/// `stats` names the statistics wanted (all by default); the dict has `series`,
/// `window_start` and those.
#[pyfunction]
#[pyo3(signature = (series, timestamps, values, window_ms, stats = None))]
fn aggregate<'py>(
    py: Python<'py>,
    series: &Bound<'py, PyAny>,
    timestamps: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    window_ms: i64,
    stats: Option<Vec<String>>,
) -> PyResult<Bound<'py, PyDict>> {
    let wanted = match &stats {
        None => agg::Stats::ALL,
        Some(names) => agg::Stats::from_names(names.iter().map(String::as_str)).map_err(to_py)?,
    };
    let s = int_arg(series, "series")?;
    let t = int_arg(timestamps, "timestamps")?;
    let v = float_arg(values, "values", true)?;
    let (s, t, v) = (s.as_slice(), t.as_slice(), v.as_slice());
    let o = py
        .detach(|| agg::aggregate_stats(s, t, v, window_ms, wanted))
        .map_err(to_py)?;
    let d = PyDict::new(py);
    d.set_item("series", column_to_py(py, o.series)?)?;
    d.set_item("window_start", column_to_py(py, o.window_start)?)?;
    if wanted.contains(agg::Stats::COUNT) {
        d.set_item("count", column_to_py(py, o.count)?)?;
    }
    for (name, bit, col) in [
        ("sum", agg::Stats::SUM, o.sum),
        ("min", agg::Stats::MIN, o.min),
        ("max", agg::Stats::MAX, o.max),
        ("mean", agg::Stats::MEAN, o.mean),
        ("first", agg::Stats::FIRST, o.first),
        ("last", agg::Stats::LAST, o.last),
        (
            "time_weighted_mean",
            agg::Stats::TIME_WEIGHTED_MEAN,
            o.time_weighted_mean,
        ),
        ("increase", agg::Stats::INCREASE, o.increase),
    ] {
        if wanted.contains(bit) {
            d.set_item(name, column_to_py(py, col)?)?;
        }
    }
    Ok(d)
}

// ------------------------------------------------------------------ quantile sketch

/// DDSketch-class quantile sketch with relative value error <= relative_accuracy.
#[pyclass(module = "bocage_native")]
struct QuantileSketch {
    inner: Sketch,
}

#[pymethods]
impl QuantileSketch {
    #[new]
    #[pyo3(signature = (relative_accuracy = 0.01))]
    fn new(relative_accuracy: f64) -> PyResult<Self> {
        Ok(QuantileSketch {
            inner: Sketch::new(relative_accuracy).map_err(to_py)?,
        })
    }

    /// Adds a batch of values; NaN or infinite values raise ValueError and add nothing.
    fn add(&mut self, py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = float_arg(values, "values", true)?;
        let s = v.as_slice();
        let inner = &mut self.inner;
        py.detach(|| inner.add(s)).map_err(to_py)
    }

    fn merge(&mut self, other: PyRef<'_, QuantileSketch>) -> PyResult<()> {
        let o = other.inner.clone();
        self.inner.merge(&o).map_err(to_py)
    }

    fn quantile(&self, q: f64) -> PyResult<f64> {
        self.inner.quantile(q).map_err(to_py)
    }

    #[getter]
    fn count(&self) -> u64 {
        self.inner.count()
    }

    #[getter]
    fn relative_accuracy(&self) -> f64 {
        self.inner.relative_accuracy()
    }

    #[getter]
    fn min(&self) -> f64 {
        self.inner.min()
    }

    #[getter]
    fn max(&self) -> f64 {
        self.inner.max()
    }

    #[getter]
    fn sum(&self) -> f64 {
        self.inner.sum()
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    #[staticmethod]
    fn from_bytes(data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let b = bytes_arg(data)?;
        let inner =
            Sketch::from_bytes(b.as_slice()).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(QuantileSketch { inner })
    }

    fn __repr__(&self) -> String {
        format!(
            "QuantileSketch(relative_accuracy={}, count={})",
            self.inner.relative_accuracy(),
            self.inner.count()
        )
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("FrameError", py.get_type::<FrameError>())?;
    m.add("FORMAT_VERSION", frame::VERSION)?;
    m.add("MAX_READINGS", column::MAX_VALUES)?;
    m.add_class::<Series>()?;
    m.add_class::<FrameHeader>()?;
    m.add_class::<Frame>()?;
    m.add_class::<QuantileSketch>()?;
    m.add_function(wrap_pyfunction!(encode_frame, m)?)?;
    m.add_function(wrap_pyfunction!(peek_header, m)?)?;
    m.add_function(wrap_pyfunction!(decode_frame, m)?)?;
    m.add_function(wrap_pyfunction!(encode_timestamps, m)?)?;
    m.add_function(wrap_pyfunction!(decode_timestamps, m)?)?;
    m.add_function(wrap_pyfunction!(encode_values, m)?)?;
    m.add_function(wrap_pyfunction!(decode_values, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate, m)?)?;
    Ok(())
}
