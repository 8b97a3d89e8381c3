set terminal png size 1400,760 font ',10' noenhanced
set output 'docs/bench/cases.png'
set title 'ns per trapped syscall (median of 9 runs)'
set style data histograms
set style histogram cluster gap 1
set style fill solid 0.8
set xtics rotate by -35
set ylabel 'ns per call (log scale)'
set logscale y
set key top left
set bmargin 17
set rmargin 12
plot 'docs/bench/cases.dat' using 3:xtic(2) title 'pinned', '' using 4 title 'unpinned'
set output 'docs/bench/scale.png'
set title 'agent throughput vs listeners (each its own process)'
unset logscale y
set logscale x
set xlabel 'listeners (one process each)'
set ylabel 'trapped calls per second'
set style data linespoints
unset xtics
set xtics
set bmargin 4
set yrange [0:*]
plot 'docs/bench/scale.dat' using 1:2 title 'agent calls/s' lw 2, '' using 1:4 title 'floor (minimal epoll supervisor) calls/s' lw 2 dt 2
