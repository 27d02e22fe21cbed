//! A sink that only counts bytes: the encode pipeline without the disk.

pub struct NullSink(pub u64);

impl cairn::Sink for NullSink {
    type Output = u64;
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0 += buf.len() as u64;
        Ok(())
    }
    fn commit(self) -> cairn::Result<u64> {
        Ok(self.0)
    }
}
