//! A GGUF file as a `TensorSource`: its tensors read on demand under our
//! parameter names, quantized linears handed over as stored.

use std::fs::File;
use std::io::BufReader;
use std::sync::{Arc, Mutex};

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Tensor};

use super::{GgufFile, gguf_name};
use crate::models::model::{TensorSource, WeightFormat};
use crate::models::ops::Lin;

/// Reads a GGUF file's tensors under our parameter names.
pub struct GgufSource<'a> {
    pub(super) file: &'a GgufFile,
    pub(super) reader: Mutex<BufReader<File>>,
    pub(super) device: Device,
}

impl GgufSource<'_> {
    fn qtensor(&self, name: &str) -> candle_core::Result<QTensor> {
        let g = gguf_name(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("no GGUF tensor for {name}")))?;
        let mut r = self.reader.lock().expect("reader lock");
        self.file
            .content
            .tensor(&mut *r, &g, &self.device)
            .map_err(|e| candle_core::Error::Msg(format!("tensor {g}: {e}")))
    }
}

impl TensorSource for GgufSource<'_> {
    fn get(&self, name: &str) -> candle_core::Result<Tensor> {
        self.qtensor(name)?.dequantize(&self.device)
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn rehome(&self) -> bool {
        true
    }

    fn lin(&self, name: &str, format: WeightFormat) -> candle_core::Result<Lin> {
        let q = self.qtensor(name)?;
        let float = matches!(q.dtype(), GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
        match format {
            // q4_0 on the CPU runs on capbench's kernel, as the synthetic
            // q4_0 models do (same blocks, same products).
            WeightFormat::Q8_0 | WeightFormat::Q4_0
                if q.dtype() == GgmlDType::Q4_0 && self.device.is_cpu() =>
            {
                let (rows, cols) = q.shape().dims2()?;
                let m = crate::models::q4::Q4Matrix::from_ggml_bytes(&q.data()?, rows, cols)
                    .ok_or_else(|| {
                        candle_core::Error::Msg(format!("{name}: q4_0 data of the wrong size"))
                    })?;
                Ok(Lin::Q4(Arc::new(m)))
            }
            WeightFormat::Q8_0 | WeightFormat::Q4_0
                if q.dtype() == GgmlDType::Q8_0 && self.device.is_cpu() =>
            {
                let (rows, cols) = q.shape().dims2()?;
                let m = crate::models::q8::Q8Matrix::from_ggml_bytes(&q.data()?, rows, cols)
                    .ok_or_else(|| {
                        candle_core::Error::Msg(format!("{name}: q8_0 data of the wrong size"))
                    })?;
                Ok(Lin::Q8(Arc::new(m)))
            }
            WeightFormat::Q8_0 | WeightFormat::Q4_0 if !float => {
                Ok(Lin::Quant(Arc::new(QMatMul::from_qtensor(q)?)))
            }
            WeightFormat::Float(dt) => Ok(Lin::Dense(q.dequantize(&self.device)?.to_dtype(dt)?)),
            _ => Ok(Lin::Dense(q.dequantize(&self.device)?)),
        }
    }
}
