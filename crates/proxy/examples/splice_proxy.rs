//! A bare byte-splicing TCP proxy: accept, connect upstream, `copy_bidirectional`, nothing else.
//! The benchmark baseline for the cost of any proxy hop on this machine; not a product.
//!
//! Usage: `splice_proxy <listen host:port> <upstream host:port | /path/to/.s.PGSQL.5432>`

use tokio::net::{TcpListener, TcpStream, UnixStream};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: splice_proxy <listen host:port> <upstream host:port | socket path>");
        std::process::exit(2);
    };
    let listener = TcpListener::bind(&listen).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (mut client, _) = listener.accept().await?;
        let _ = client.set_nodelay(true);
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let copied = if upstream.starts_with('/') {
                match UnixStream::connect(&upstream).await {
                    Ok(mut u) => tokio::io::copy_bidirectional(&mut client, &mut u).await,
                    Err(e) => Err(e),
                }
            } else {
                match TcpStream::connect(&upstream).await {
                    Ok(mut u) => {
                        let _ = u.set_nodelay(true);
                        tokio::io::copy_bidirectional(&mut client, &mut u).await
                    }
                    Err(e) => Err(e),
                }
            };
            if let Err(e) = copied {
                eprintln!("session ended: {e}");
            }
        });
    }
}
