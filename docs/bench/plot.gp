set terminal png size 1100,600 font ',10'
set output '/work/main/docs/bench/cases.png'
set title 'ns per trapped syscall (median of 5 runs)'
set style data histograms
set style histogram cluster gap 1
set style fill solid 0.8
set xtics rotate by -35
set ylabel 'ns per call'
set key top left
set bmargin 12
plot '/work/main/docs/bench/cases.dat' using 3:xtic(2) title 'pinned', '' using 4 title 'unpinned'
